from pathlib import Path

from lumozbatch.shell.location import batch_home, work_tree_top


def test_outside_git_the_batch_lives_beside_the_manifest(tmp_path: Path, monkeypatch) -> None:
    (tmp_path / "m").mkdir()
    monkeypatch.chdir(tmp_path)
    home = batch_home("m/x.yaml", "demo")
    assert home.out_dir == tmp_path.resolve() / "m" / "outputs" / "demo"
    assert home.manifest_key == str(tmp_path.resolve() / "m" / "x.yaml")
    assert not home.in_git


def test_in_git_the_batch_lives_at_the_top_whatever_the_current_folder(tmp_path: Path, monkeypatch) -> None:
    repo = tmp_path / "repo"
    (repo / ".git").mkdir(parents=True)
    (repo / "manifests" / "deep").mkdir(parents=True)
    manifest = repo / "manifests" / "deep" / "x.yaml"
    for cwd in (tmp_path, repo, repo / "manifests" / "deep"):
        monkeypatch.chdir(cwd)
        rel = Path(__import__("os").path.relpath(manifest, cwd))
        home = batch_home(rel, "demo")
        assert home.out_dir == repo.resolve() / "outputs" / "demo"
        assert home.manifest_key == "manifests/deep/x.yaml"
        assert home.in_git


def test_a_linked_worktree_has_a_git_file(tmp_path: Path) -> None:
    (tmp_path / "wt").mkdir()
    (tmp_path / "wt" / ".git").write_text("gitdir: /elsewhere\n")
    (tmp_path / "wt" / "a").mkdir()
    assert work_tree_top(tmp_path / "wt" / "a") == tmp_path / "wt"


def test_symlinked_folders_resolve_to_one_batch(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    (repo / ".git").mkdir(parents=True)
    (repo / "manifests").mkdir()
    (tmp_path / "link").symlink_to(repo / "manifests")
    a = batch_home(repo / "manifests" / "x.yaml", "n")
    b = batch_home(tmp_path / "link" / "x.yaml", "n")
    assert a == b

from pathlib import Path

import pytest

from lumozbatch.errors import UsageError
from lumozbatch.shell.location import batch_home, bucket_home, bucket_url, find_out_dir, is_bucket_url, work_tree_top


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


def test_find_out_dir(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "some-dir").mkdir()
    assert find_out_dir("some-dir") == Path("some-dir")
    (tmp_path / "m.yaml").write_text("version: 1\nname: sketch-portraits\njobs: []\n")
    assert find_out_dir("m.yaml") == Path("outputs/sketch-portraits")
    (tmp_path / "bad.yaml").write_text("version: 1\nname: ../escape\n")
    with pytest.raises(UsageError, match="no valid 'name'"):
        find_out_dir("bad.yaml")
    (tmp_path / "broken.yaml").write_text("name: [unclosed\n")
    with pytest.raises(UsageError, match="not a readable manifest"):
        find_out_dir("broken.yaml")
    with pytest.raises(UsageError, match="no such folder or manifest"):
        find_out_dir("missing.yaml")


def test_a_bucket_batch_lives_under_the_state_folder_keyed_by_its_url(tmp_path: Path) -> None:
    env = {"XDG_STATE_HOME": str(tmp_path)}
    home = bucket_home("s3://team-bucket/outputs/portraits", env)
    assert home.parent == tmp_path / "lumozbatch"
    assert home.name.startswith("team-bucket_outputs_portraits-")
    assert bucket_home("s3://team-bucket/outputs/portraits/", env) == home  # a trailing slash is the same place
    assert bucket_home("s3://team-bucket/outputs/other", env) != home
    assert is_bucket_url("s3://b/p") and not is_bucket_url("outputs/x") and not is_bucket_url(Path("s3:/x"))


def test_a_bucket_url_is_recorded_without_its_trailing_slash() -> None:
    assert bucket_url("s3://team/outputs/x/") == "s3://team/outputs/x"
    assert bucket_url("s3://team/") == "s3://team"
    assert bucket_url("s3://") == "s3://"

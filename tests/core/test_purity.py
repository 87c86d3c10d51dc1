"""``lumozbatch.core`` is pure, by test: importing every module of it and building, checking
and expanding a manifest from text and an in-memory catalogue touches no file, reads no
clock, and imports neither trio nor httpx nor any layer above the core.

It runs in a fresh interpreter, so nothing another test imported hides an import here.
``lumozbatch`` itself is stood in for by an empty package (its ``__init__`` loads the whole
public API and reads package metadata); ``jsonschema``, ``referencing``, ``orjson`` and
``yaml`` are imported (and read their own data files) before watching starts.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

from tests.conftest import REPO

_HARNESS = r'''
import importlib, importlib.util, json, os, pkgutil, stat, sys, time, types, warnings

for name in ("trio", "httpx", "anyio", "sniffio", "h11", "hypercorn", "starlette", "rich"):
    sys.modules[name] = None  # importing it raises ImportError
import jsonschema, orjson, referencing, referencing.jsonschema, yaml  # allowed; read their data now

warnings.simplefilter("ignore")  # a warning's source line would be read from disk
spec = importlib.util.find_spec("lumozbatch")
package = types.ModuleType("lumozbatch")
package.__path__ = list(spec.submodule_search_locations)
sys.modules["lumozbatch"] = package
core_dir = os.path.join(package.__path__[0], "core")
modules = sorted("lumozbatch.core." + m.name for m in pkgutil.iter_modules([core_dir]))
schemas = json.loads(sys.stdin.read())

touched, clock = [], []


def _is_import_machinery(event, args):
    # the interpreter reading a module's source or bytecode, or listing a package folder
    path = os.fspath(args[0]) if args and args[0] is not None else ""
    if event == "open":
        return isinstance(path, str) and path.endswith((".py", ".pyc"))
    if event in ("os.listdir", "os.scandir"):
        return _is_file(os.path.join(path or ".", "__init__.py")) or path in sys.path
    return False


def _audit(event, args):
    if event in ("open", "os.listdir", "os.scandir") or event.startswith(("os.", "shutil.", "glob.", "socket.", "subprocess.", "tempfile.")):
        if not _is_import_machinery(event, args):
            touched.append(f"{event} {args[0] if args else ''}")


def _watch(module, name, kind):
    real = getattr(module, name)

    def watched(*a, **k):
        (clock if kind == "clock" else touched).append(f"{module.__name__}.{name}")
        return real(*a, **k)

    setattr(module, name, watched)


_real_stat = os.stat


def _is_file(path):
    try:
        return stat.S_ISREG(_real_stat(path).st_mode)
    except OSError:
        return False


for name in ("time", "time_ns", "monotonic", "monotonic_ns", "perf_counter", "perf_counter_ns", "sleep", "localtime", "gmtime"):
    _watch(time, name, "clock")
for name in ("stat", "lstat", "listdir", "scandir", "getcwd", "walk"):
    _watch(os, name, "file")
sys.addaudithook(_audit)

for name in modules:
    importlib.import_module(name)

from lumozbatch.core import gridcheck
from lumozbatch.core.build import build_partial
from lumozbatch.core.catalogue import SchemaCatalogue
from lumozbatch.core.grid import expand
from lumozbatch.core.manifest import SourceText
from lumozbatch.core.yamlsafe import parse_yaml

TEXT = """\
version: 1
name: pure
defaults: {guidance_scale: 5}
jobs:
  - id: a
    model: hidream-l1
    params: {prompt: 'a {who} at {time}'}
    matrix: {who: {file: who.txt}, num_inference_steps: [10, 20]}
    zip: {time: [dawn, dusk]}
    exclude: [{time: dusk, num_inference_steps: 20}]
    filename: '{job}/{who}-{time}-{num_inference_steps}'
  - id: b
    model: flux-sketch-smudge
    params: {prompt: 'Sketch Smudge, {x}'}
    matrix: {x: [1, 2]}
pricing: {hidream-l1: 0.01}
"""
result = {}
for label, models in (("full", schemas["models"]), ("no-hidream", {k: v for k, v in schemas["models"].items() if k != "hidream-l1"})):
    catalogue = SchemaCatalogue(manifest=schemas["manifest"], models=models)
    doc = parse_yaml(TEXT, "m.yaml")
    manifest, problems = build_partial(doc, "m.yaml", {"who.txt": SourceText("who.txt", text="cat\ndog\n")}, catalogue)
    problems = problems + gridcheck.check(manifest, catalogue)
    specs = list(expand(manifest))
    result[label] = {
        "problems": [str(d) for d in problems],
        "count": manifest.count(),
        "filenames": [s.filename for s in specs],
        "identities": len({s.identity for s in specs}),
    }
EXTRA

layers = sorted(m for m in sys.modules if m.startswith("lumozbatch") and m != "lumozbatch" and not m.startswith(("lumozbatch.core", "lumozbatch.errors")))
blocked = sorted(m for m in ("trio", "httpx") if sys.modules.get(m) is not None)
print(json.dumps({"touched": touched, "clock": clock, "layers": layers, "blocked": blocked, "modules": modules, "result": result}))
'''


def _run(extra: str = "") -> dict:
    schemas = {
        "manifest": json.loads((REPO / "schemas" / "manifest.schema.json").read_text(encoding="utf-8")),
        "models": {p.stem: json.loads(p.read_text(encoding="utf-8")) for p in sorted((REPO / "schemas" / "models").glob("*.json"))},
    }
    code = _HARNESS.replace("EXTRA", textwrap.dedent(extra))
    proc = subprocess.run(
        [sys.executable, "-B", "-c", code],
        input=json.dumps(schemas),
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_core_touches_no_file_clock_trio_or_httpx() -> None:
    report = _run()
    assert "lumozbatch.core.grid" in report["modules"] and "lumozbatch.core.build" in report["modules"]
    assert report["touched"] == []
    assert report["clock"] == []
    assert report["layers"] == []
    assert report["blocked"] == []
    full = report["result"]["full"]
    assert full["problems"] == []
    assert full["count"] == 8 and full["identities"] == 8  # a: 2 x 2 x 2 - 2 excluded; b: 2
    assert full["filenames"][:3] == ["a/cat-dawn-10", "a/cat-dusk-10", "a/cat-dawn-20"]


def test_the_catalogue_passed_in_is_the_one_used() -> None:
    # the same text against a catalogue without hidream-l1: that model is unknown now
    without = _run()["result"]["no-hidream"]
    assert [p.split(": warning: ")[1].split(":")[0] for p in without["problems"]] == ["jobs[0].model"]
    assert "unknown model 'hidream-l1'" in without["problems"][0]


def test_the_watch_sees_a_file_a_clock_and_a_layer_above() -> None:
    # the harness must be able to fail: an impure step under the same watch is reported
    report = _run(
        """
        open(os.path.join(core_dir, "..", "..", "pyproject.toml")).close()
        os.stat(core_dir)
        time.monotonic()
        import lumozbatch.resources
        """
    )
    assert any(t.startswith("open ") and t.endswith("pyproject.toml") for t in report["touched"])
    assert "os.stat" in report["touched"]
    assert report["clock"] == ["time.monotonic"]
    assert report["layers"] == ["lumozbatch.resources"]

"""Every reference to the code in the docs and the code's own docstrings resolves, so a rename or a
move cannot leave a stale name behind.

Where: docs/*.md and README.md, the Python files under tf_convgan/, scripts/, benchmarks/,
tools/ and run.py (their docstrings and comments; their code's imports resolve anyway), and the
comments of gin_configs/. Not tests/: their code builds module names and paths that are not
references (fake modules of the layering test, gin bindings of refused configs).

What counts as a reference, and when it resolves:
- a dotted path `tf_convgan.a.b.C.d`: its longest prefix that is a package or module of the
  source tree is a file here, and each remaining name is defined in it: at module level (def,
  class, assignment, import: a name imported from tf_convgan is followed to its definition), or
  inside a class (a method, a class attribute, or a `self.name = ...` in one of its methods). A
  module is named by its own path only: `tf_convgan.penalties` is stale although the package's
  __init__ imports `penalties` from tf_convgan.objectives (its path is
  tf_convgan.objectives.penalties; `import tf_convgan.penalties` fails).
  This is read from the files' syntax trees: nothing is imported or run, and the test takes
  about a second of CPU.
- a path `tf_convgan/...`, `tests/...`, `scripts/...`, `benchmarks/...`, `gin_configs/...`,
  `tools/...`, `docs/...`, `notebooks/...` (relative to the repository root): that file or
  folder exists; one with a `*` matches at least one file (a glob); `x.{gin,yaml}` names both
  x.gin and x.yaml. Not a path after an output flag (`--out_prefix docs/x`: the command writes
  it) nor one inside another path (`../shared/...`, a URL, `owner/repo/notebooks/x.ipynb`).
- a bare test file name `test_x.py` (the docs list files of one folder after its first full
  path): a file of that name exists under tests/.
- `file.py::name` or `file.py::Class::name`: a test function (or class) of that name is defined
  in that file; a name with `*` (`::test_*r1*`) matches at least one. A parametrization id
  (`::test_x[r1-hinge]`, `[*user*]`) is checked loosely, as ids are made at collection time:
  each of its `-`/`*`-separated parts occurs in the file's text (a parameter value, a
  pytest.param id or a function name the id is built from).
"""
import ast
import fnmatch
import pathlib
import re
import tomllib

ROOT = pathlib.Path(__file__).resolve().parents[1]
PACKAGE = "tf_convgan"
TOP_FOLDERS = ("tf_convgan", "tests", "scripts", "benchmarks", "gin_configs", "tools", "docs",
               "notebooks")

DOTTED = re.compile(r"(?<![\w.])tf_convgan(?:\.[A-Za-z_]\w*)+")
# optionally after a test file: ::name[::name][parametrization id]
TEST_SUFFIX = r"(?:::([\w*]+(?:::[\w*]+)?)(?:\[([^\]\s]*)\])?)?"
# a path under one of the top folders
PATH = re.compile(r"(?<![\w./-])((?:%s)/(?:[\w.*/-]|\{[\w.,-]+\})*(?<![.-]))"
                  % "|".join(TOP_FOLDERS) + TEST_SUFFIX)
# a path after an output flag (`--out_dir X`, `--out_prefix X`) is what the command writes
OUTPUT_FLAG = re.compile(r"--\w*out\w*[ =]$")
BARE_TEST_FILE = re.compile(r"(?<![\w./-])(test_\w+\.py)" + TEST_SUFFIX)


def _sources():
    """(file, its text). Python files are read whole: their code names tf_convgan in imports,
    which resolve by construction, so only the comments and strings can be stale."""
    for path in sorted((ROOT / "docs").glob("*.md")) + [ROOT / "README.md"]:
        yield path, path.read_text()
    files = [ROOT / "run.py"]
    for folder in ("tf_convgan", "scripts", "benchmarks", "tools"):
        files += sorted((ROOT / folder).rglob("*.py"))
    files += sorted((ROOT / "gin_configs").rglob("*.gin"))
    for path in files:
        yield path, path.read_text()


_TREES = {}


def _tree(path):
    if path not in _TREES:
        _TREES[path] = ast.parse(path.read_text(), filename=str(path))
    return _TREES[path]


def _top_level(statements):
    """Statements at module level, also inside top-level if / try blocks."""
    for node in statements:
        if isinstance(node, (ast.If, ast.Try)):
            yield from _top_level(node.body + node.orelse + getattr(node, "finalbody", []))
            for handler in getattr(node, "handlers", []):
                yield from _top_level(handler.body)
        else:
            yield node


def _names(statements):
    """{name: what defines it}: a def/class node, ('import', module, name) or None (a value)."""
    names = {}
    for node in _top_level(statements):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names[node.name] = node
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            for target in node.targets if isinstance(node, ast.Assign) else [node.target]:
                for name in ast.walk(target):
                    if isinstance(name, ast.Name):
                        names[name.id] = None
        elif isinstance(node, ast.ImportFrom):
            for alias in node.names:
                names[alias.asname or alias.name] = ("import", node.module or "", alias.name)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                names[alias.asname or alias.name.split(".")[0]] = ("import", alias.name, None)
    return names


def _class_names(cls):
    names = _names(cls.body)
    for node in ast.walk(cls):
        if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
                and node.value.id == "self" and isinstance(node.ctx, ast.Store)):
            names.setdefault(node.attr, None)
    return names


def _package_dirs():
    """{package: its folder} of pyproject.toml's package-dir (tf_convgan.gin_configs is
    gin_configs/, a package of data files without an __init__.py)."""
    with open(ROOT / "pyproject.toml", "rb") as f:
        setuptools = tomllib.load(f)["tool"]["setuptools"]
    return {name: ROOT / folder for name, folder in setuptools.get("package-dir", {}).items()}


PACKAGE_DIRS = _package_dirs()


def _module_file(dotted):
    """The file of module or package `dotted` in this tree (a mapped package: its folder), else
    None."""
    if dotted in PACKAGE_DIRS:
        return PACKAGE_DIRS[dotted] if PACKAGE_DIRS[dotted].is_dir() else None
    base = ROOT.joinpath(*dotted.split("."))
    if (base / "__init__.py").is_file():
        return base / "__init__.py"
    if base.with_suffix(".py").is_file():
        return base.with_suffix(".py")
    return None


def _resolves(dotted, depth=0):
    """Whether `tf_convgan.a.b...` names a module, or something defined in one (see above)."""
    parts = dotted.split(".")
    for split in range(len(parts), 0, -1):
        module = _module_file(".".join(parts[:split]))
        if module is not None:
            break
    else:
        return False
    rest = parts[split:]
    if module.is_dir():
        return not rest
    names = _names(_tree(module).body)
    while rest:
        name, rest = rest[0], rest[1:]
        if name not in names:
            return False
        found = names[name]
        if isinstance(found, ast.ClassDef):
            names = _class_names(found)
        elif isinstance(found, tuple):  # imported: follow it into this package, else trust it
            _, source, imported = found
            if not source.startswith(PACKAGE) or depth > 5:
                return True
            target = source if imported is None else f"{source}.{imported}"
            if _module_file(target) is not None:
                return False  # a module is named by its own path, not where it is imported
            return _resolves(".".join([target] + rest), depth + 1)
        elif rest:  # a function or a value has no documented attributes here
            return False
    return True


def _test_names(path):
    names = set()
    for node in _tree(path).body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            names.add(node.name)
        elif isinstance(node, ast.ClassDef):
            names.add(node.name)
            names.update(f"{node.name}::{item.name}" for item in node.body
                         if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)))
    return names


def _test_problem(paths, name, test_id=None):
    """Why `paths`::name[test_id] names no test, or None (see the module docstring)."""
    names = set().union(*(_test_names(p) for p in paths))
    if not (fnmatch.filter(names, name) if "*" in name else name in names):
        return f"no test {name!r} in it"
    text = "".join(p.read_text() for p in paths)
    for part in (test_id or "").replace("*", "-").split("-"):
        if part not in text:
            return f"no parameter {part!r} of the id [{test_id}] in it"
    return None


def _path_problem(relative, test_name=None, test_id=None):
    braces = re.search(r"\{([\w.,-]+)\}", relative)
    if braces:
        problems = [_path_problem(relative[:braces.start()] + part + relative[braces.end():],
                                  test_name, test_id) for part in braces.group(1).split(",")]
        return next((p for p in problems if p), None)
    if "*" in relative:
        matches = sorted(ROOT.glob(relative))
        return None if matches else "matches no file"
    path = ROOT / relative
    if not path.exists():
        return "no such file or folder"
    if test_name:
        return _test_problem([path], test_name, test_id)
    return None


def _bare_test_problem(name, test_name=None, test_id=None):
    paths = sorted((ROOT / "tests").rglob(name))
    if not paths:
        return "no such file under tests/"
    if test_name:
        return _test_problem(paths, test_name, test_id)
    return None


def _stale_references():
    stale = []
    for source, text in _sources():
        where = source.relative_to(ROOT)
        for match in DOTTED.finditer(text):
            if not _resolves(match.group(0)):
                stale.append(f"{where}: {match.group(0)}")
        for match in PATH.finditer(text):
            if OUTPUT_FLAG.search(text, max(0, match.start() - 40), match.start()):
                continue
            problem = _path_problem(*match.groups())
            if problem:
                stale.append(f"{where}: {match.group(0)} ({problem})")
        for match in BARE_TEST_FILE.finditer(text):
            problem = _bare_test_problem(*match.groups())
            if problem:
                stale.append(f"{where}: {match.group(0)} ({problem})")
    return sorted(set(stale))


def test_every_reference_in_docs_and_docstrings_resolves():
    stale = _stale_references()
    assert not stale, "stale references:\n" + "\n".join(stale)


def test_the_resolver_tells_real_references_from_stale_ones():
    """The rules above on known names: a test that passes on everything would catch nothing."""
    assert _resolves("tf_convgan.errors.ConfigError")
    assert _resolves("tf_convgan.gan.model.GAN.train_step")
    assert _resolves("tf_convgan.gan.model.GAN.seed")  # self.seed = ... in __init__
    assert _resolves("tf_convgan.gan.GAN")  # a class re-exported by the package
    assert not _resolves("tf_convgan.penalties")  # a module imported by tf_convgan/__init__.py
    assert _resolves("tf_convgan.gin_configs")  # pyproject.toml's package-dir
    assert not _resolves("tf_convgan.penalty_functions")
    assert not _resolves("tf_convgan.errors.NoSuchError")
    assert not _resolves("tf_convgan.gan.model.GAN.no_such_method")
    this = "tests/test_doc_references.py"
    assert _path_problem(this, "test_the_resolver_tells_real_references_from_stale_ones") is None
    assert _path_problem(this, "test_*resolver*") is None
    assert _path_problem(this, "test_no_such_test")
    assert _path_problem(this, "test_*resolver*", "*stale_ones-resolves*") is None
    assert _path_problem(this, "test_*resolver*", "no_such_" + "parameter")  # not in its text
    assert _path_problem("tests/no_such_test_file.py", None)
    assert _path_problem("gin_configs/no_such_folder/*.gin", None)
    assert _path_problem("tests/test_doc_references.{py,gin}", None) == "no such file or folder"
    assert _path_problem("tests/{test_doc_references,test_configs}.py", None) is None
    assert _bare_test_problem("test_doc_references.py", None) is None
    assert _bare_test_problem("test_no_such_file.py", None)
    found = [m.group(0) for m in PATH.finditer(
        "see tests/gan/test_model.py::test_x[r1-hinge], `scripts/toy2d_grid.py`. And "
        "../shared/data/x.py or https://host/tests/y.py")]
    assert found == ["tests/gan/test_model.py::test_x[r1-hinge]", "scripts/toy2d_grid.py"]
    assert [m.group(0) for m in DOTTED.finditer("tf_convgan.errors. and x.tf_convgan.y")] == [
        "tf_convgan.errors"]

"""A run's configuration read as data: a restricted reader of `operative_config.gin`.

`--gin_file` and `--gin_param` are code: gin imports the modules a file names and, with
`from __gin__ import dynamic_registration`, calls any function (`@os.system()`). A run directory
is data, so its operative config is never handed to gin. This reader runs gin's parser (a
tokenizer; values are Python literals through `ast.literal_eval`) with a delegate that only
records references, and accepts nothing but
  - bindings `[scope/]name.parameter = value` of configurables registered by tf_convgan,
  - macro definitions `NAME = value`,
  - values: numbers, strings, booleans, None, lists / tuples / dicts of values, references
    `@[scope/]name` / `@[scope/]name()` to tf_convgan's configurables, macros `%NAME`.
Anything else (`import`, `from __gin__ import ...`, `include`, a reference to anything that is not
tf_convgan's) is a `RunConfigError` naming the file and line. Nothing is imported, nothing is
called while reading, and gin's global configuration is neither read nor changed.

`RunConfig.build('train.generator_fn')` then calls the network factory that binding names (a
function of tf_convgan.networks; nothing else is ever called) with the file's bindings as keyword
arguments, resolving macros, scopes (`@g/name`: the bindings of `name` and then of `g/name`) and
nested references as gin would. Every configurable of tf_convgan is registered once the package
is imported (which importing this module does). `RunConfig.literal`, `reference` and
`literal_kwargs` read bindings as values (macros resolved) for the readers that rebuild other
parts of a run from them (run_dir.objective: the GAN's objective).
"""
import dataclasses
import inspect
import io
import tokenize

import gin
from gin import config_parser

from tf_convgan.errors import ConfigError
from tf_convgan.run_dir import files
from tf_convgan.run_dir.layout import operative_config_path

_LIBRARY = "tf_convgan"
_NETWORKS = "tf_convgan.networks"


class RunConfigError(ConfigError):
    """A run directory's operative config that the restricted reader does not accept."""


@dataclasses.dataclass(frozen=True)
class Reference:
    """`@scope/selector` (evaluate=False) or `@scope/selector()` (evaluate=True)."""
    scope: str
    selector: str
    evaluate: bool


@dataclasses.dataclass(frozen=True)
class Macro:
    """`%name`."""
    name: str


class _RecordingDelegate(config_parser.ParserDelegate):
    """Turns references and macros into plain records; resolves nothing."""

    def configurable_reference(self, scoped_configurable_name, evaluate):
        scope, _, selector = scoped_configurable_name.rpartition("/")
        return Reference(scope, selector, bool(evaluate))

    def macro(self, macro_name):
        return Macro(macro_name)


def _library_configurable(selector):
    """gin's registration of `selector` if it is one of tf_convgan's configurables, else None.
    (A read-only lookup in gin's registry of decorated functions and classes.)"""
    try:
        configurable = gin.config._REGISTRY.get_match(selector)  # noqa: SLF001
    except KeyError:  # ambiguous
        return None
    if configurable is None:
        return None
    module = configurable.module or ""
    if module != _LIBRARY and not module.startswith(_LIBRARY + "."):
        return None
    return configurable


_UNBOUND = object()


class RunConfig:
    """The bindings and macros of an operative config, checked; see the module docstring."""

    def __init__(self, path, bindings, macros):
        self.path = path
        self._bindings = bindings  # {(scope, selector): {parameter: (value, line)}}
        self._macros = macros  # {name: (value, line)}

    def value(self, key):
        """The raw value bound to `key` ('selector.parameter', unscoped), or KeyError."""
        selector, _, parameter = key.rpartition(".")
        configurable = _library_configurable(selector)
        if configurable is None:
            raise KeyError(key)
        return self._bindings.get(("", configurable.selector), {})[parameter][0]

    def resolved(self, key):
        """The value bound to `key` with its macros resolved (a reference stays a `Reference`),
        or KeyError when `key` is not bound."""
        value = self.value(key)
        seen = set()
        while isinstance(value, Macro):
            if value.name in seen:
                raise RunConfigError(f"{self.path}: {key}: macro %{value.name} refers to itself")
            seen.add(value.name)
            value = self._macros[value.name][0]  # defined: checked when the file was read
        return value

    def literal(self, key, default=None):
        """The literal value bound to `key` (macros resolved), `default` when `key` is not bound;
        RunConfigError when it is bound to a reference."""
        try:
            value = self.resolved(key)
        except KeyError:
            return default
        if isinstance(value, Reference):
            raise RunConfigError(f"{self.path}: {key} = @{value.selector}: only a literal value "
                                 f"is read here")
        return value

    def reference(self, key):
        """The `Reference` bound to `key` (macros resolved); None when `key` is not bound or is
        bound to a literal (such as None)."""
        try:
            value = self.resolved(key)
        except KeyError:
            return None
        return value if isinstance(value, Reference) else None

    def literal_kwargs(self, selector, function, *, exclude=()):
        """{parameter: literal value} of the unscoped bindings `selector.<parameter>` of
        `function`'s keyword-only parameters (the library's hyperparameters) but `exclude`;
        those not bound are left out (the function's defaults apply), one bound to a reference
        raises RunConfigError."""
        kwargs = {}
        for parameter in inspect.signature(function).parameters.values():
            if parameter.kind != parameter.KEYWORD_ONLY or parameter.name in exclude:
                continue
            value = self.literal(f"{selector}.{parameter.name}", _UNBOUND)
            if value is not _UNBOUND:
                kwargs[parameter.name] = value
        return kwargs

    def build(self, key):
        """Calls the network factory bound to `key` (e.g. 'train.generator_fn' =
        @resnet_generator) with its bindings; returns what the factory returns."""
        try:
            reference = self.value(key)
        except KeyError:
            raise RunConfigError(f"{self.path}: does not bind {key}") from None
        if not isinstance(reference, Reference) or reference.evaluate:
            raise RunConfigError(f"{self.path}: {key} must be a network factory such as "
                                 f"@resnet_generator, got {reference!r}")
        return self._call(reference, [], key)

    def _resolve(self, value, scopes, where):
        if isinstance(value, Macro):
            if value.name not in self._macros:
                raise RunConfigError(f"{self.path}: {where}: macro %{value.name} is not defined")
            return self._resolve(self._macros[value.name][0], scopes, where)
        if isinstance(value, Reference):
            if value.evaluate:
                return self._call(value, scopes, where)
            return lambda: self._call(value, scopes, where)
        if isinstance(value, (list, tuple)):
            return type(value)(self._resolve(v, scopes, where) for v in value)
        if isinstance(value, dict):
            return {k: self._resolve(v, scopes, where) for k, v in value.items()}
        return value

    def _call(self, reference, scopes, where):
        configurable = _library_configurable(reference.selector)
        function = configurable.wrapped if configurable is not None else None
        module = getattr(function, "__module__", "") or ""
        if not (inspect.isfunction(function) and (module == _NETWORKS or
                                                  module.startswith(_NETWORKS + "."))):
            raise RunConfigError(
                f"{self.path}: {where}: @{reference.selector} is not a network factory of "
                f"tf_convgan.networks (only those are called when a run directory is read)")
        if reference.scope:
            scopes = scopes + reference.scope.split("/")
        kwargs = {}
        for depth in range(len(scopes) + 1):  # unscoped first, the innermost scope last
            scope = "/".join(scopes[:depth])
            for parameter, (value, line) in self._bindings.get(
                    (scope, configurable.selector), {}).items():
                kwargs[parameter] = self._resolve(value, scopes, f"line {line}")
        return function(**kwargs)


def _check_value(value, check_reference, where):
    if value is None or isinstance(value, (bool, int, float, str)):
        return
    if isinstance(value, (list, tuple)):
        for item in value:
            _check_value(item, check_reference, where)
    elif isinstance(value, dict):
        for key, item in value.items():
            _check_value(key, check_reference, where)
            _check_value(item, check_reference, where)
    elif isinstance(value, Reference):
        check_reference(value, where)
    elif isinstance(value, Macro):
        pass  # checked once every statement is read
    else:
        raise RunConfigError(f"{where}: {type(value).__name__} values are not accepted")


def _macros_used(value):
    if isinstance(value, Macro):
        yield value.name
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from _macros_used(item)
    elif isinstance(value, dict):
        for item in list(value.keys()) + list(value.values()):
            yield from _macros_used(item)


MAX_NESTING = 64  # brackets inside brackets in one value (gin's parser recurses)


def _check_nesting(text, path):
    """RunConfigError naming the line where brackets nest deeper than MAX_NESTING (before gin's
    recursive parser, which would run out of stack). Unbalanced text is left to the parser."""
    depth = 0
    try:
        for token in tokenize.generate_tokens(io.StringIO(text).readline):
            if token.type == tokenize.OP and token.string in "([{":
                depth += 1
                if depth > MAX_NESTING:
                    raise RunConfigError(f"{path}:{token.start[0]}: values nest deeper than "
                                         f"{MAX_NESTING} brackets")
            elif token.type == tokenize.OP and token.string in ")]}":
                depth = max(depth - 1, 0)
    except (tokenize.TokenError, SyntaxError):
        pass


def _statements(text, path):
    """gin's parser over `text`, its errors as RunConfigErrors naming the line."""
    _check_nesting(text, path)
    try:
        parser = config_parser.ConfigParser(io.StringIO(text), _RecordingDelegate())
        while True:
            statement = parser.parse_statement()
            if statement is None:
                return
            yield statement
    except SyntaxError as e:
        raise RunConfigError(f"{path}:{e.lineno}: {str(e.msg).splitlines()[0]}") from None
    except tokenize.TokenError as e:
        raise RunConfigError(f"{path}:{e.args[1][0]}: {e.args[0]}") from None
    except ValueError as e:
        raise RunConfigError(f"{path}: {str(e).splitlines()[0]}") from None
    except RecursionError:
        raise RunConfigError(f"{path}: values nest too deeply to be read") from None


def parse_run_config(text, path):
    """Parses the text of an operative config (`path` names it in errors); see the module
    docstring for what is accepted."""
    bindings, macros, used = {}, {}, []

    def check_reference(reference, where):
        if _library_configurable(reference.selector) is None:
            raise RunConfigError(f"{where}: @{reference.selector} is not a configurable of "
                                 f"tf_convgan")

    statements = _statements(text, path)
    for statement in statements:
        line = statement.location.line_num
        where = f"{path}:{line}"
        if isinstance(statement, config_parser.ImportStatement):
            raise RunConfigError(
                f"{where}: `{statement.format()}`: a run directory's configuration is data and "
                f"may not import anything (only bindings of tf_convgan's configurables with "
                f"literal values are read)")
        if isinstance(statement, config_parser.IncludeStatement):
            raise RunConfigError(f"{where}: `include` is not accepted in a run directory's "
                                 f"configuration")
        if isinstance(statement, config_parser.BlockDeclaration):
            continue  # its bindings follow as BindingStatements
        if not isinstance(statement, config_parser.BindingStatement):
            raise RunConfigError(f"{where}: unexpected statement")
        _check_value(statement.value, check_reference, where)
        used.extend((name, where) for name in _macros_used(statement.value))
        if not statement.arg_name:  # a macro: NAME = value
            name = (f"{statement.scope}/{statement.selector}" if statement.scope
                    else statement.selector)
            macros[name] = (statement.value, line)
            continue
        configurable = _library_configurable(statement.selector)
        if configurable is None:
            raise RunConfigError(f"{where}: {statement.selector!r} is not a configurable of "
                                 f"tf_convgan")
        parameters = inspect.signature(configurable.wrapped).parameters
        if statement.arg_name not in parameters and not any(
                p.kind == p.VAR_KEYWORD for p in parameters.values()):
            raise RunConfigError(f"{where}: {statement.selector} has no parameter "
                                 f"{statement.arg_name!r}")
        bindings.setdefault((statement.scope, configurable.selector), {})[
            statement.arg_name] = (statement.value, line)
    for name, where in used:
        if name not in macros:
            raise RunConfigError(f"{where}: macro %{name} is not defined")
    _check_macro_cycles(macros, path)
    return RunConfig(path, bindings, macros)


def _check_macro_cycles(macros, path):
    """RunConfigError naming the line of a macro whose value leads back to itself (`A = %B`,
    `B = %A`: resolving it would never end)."""
    done = set()
    for first in macros:
        path_of, stack = {}, [(first, iter(_macros_used(macros[first][0])))]
        path_of[first] = 0
        while stack:
            name, uses = stack[-1]
            following = next(uses, None)
            if following is None:
                done.add(name)
                del path_of[name]
                stack.pop()
            elif following in path_of:
                cycle = [n for n, _ in stack[path_of[following]:]] + [following]
                raise RunConfigError(
                    f"{path}:{macros[following][1]}: macro %{following} refers to itself "
                    f"({' -> '.join('%' + n for n in cycle)})")
            elif following not in done and following in macros:
                path_of[following] = len(stack)
                stack.append((following, iter(_macros_used(macros[following][0]))))


def read_run_config(model_dir):
    """The RunConfig of `model_dir`'s operative_config.gin; RunConfigError if the reader does
    not accept it, FileNotFoundError if there is none."""
    if not files.isdir(model_dir):
        what = "is a file" if files.exists(model_dir) else "does not exist"
        raise FileNotFoundError(f"{model_dir!r} {what}: it should be a training directory "
                                f"written by run.py")
    path = operative_config_path(model_dir)
    if not files.isfile(path):
        raise FileNotFoundError(f"{path} does not exist: not a training directory written by "
                                f"run.py")
    try:
        text = files.read_text(path)
    except UnicodeDecodeError:
        raise RunConfigError(f"{path}: not a UTF-8 text file") from None
    return parse_run_config(text, path)

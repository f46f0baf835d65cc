"""Gin parsing with clear errors; gin_configs/ lookup."""
import os

import gin

PACKAGE_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GIN_CONFIGS_DIR = os.path.join(PACKAGE_ROOT, "gin_configs")


class GinError(ValueError):
    """A gin file or binding that does not parse or names an unknown configurable/parameter."""


def resolve_gin_file(path):
    """A gin file as given, or relative to the project's gin_configs/ directory."""
    if os.path.exists(path):
        return path
    candidate = os.path.join(GIN_CONFIGS_DIR, path)
    if os.path.exists(candidate):
        return candidate
    raise FileNotFoundError(f"--gin_file {path!r} does not exist (also looked in {GIN_CONFIGS_DIR})")


def parse(gin_files=(), bindings=(), *, finalize=True):
    """Parses gin files and bindings (bindings win); unknown names raise GinError."""
    files = [resolve_gin_file(f) for f in gin_files]
    gin.add_config_file_search_path(GIN_CONFIGS_DIR)
    try:
        gin.parse_config_files_and_bindings(files, list(bindings), finalize_config=finalize)
    except (ValueError, KeyError, SyntaxError, TypeError) as e:
        raise GinError(f"gin: {e}") from e

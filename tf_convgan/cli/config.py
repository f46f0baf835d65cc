"""Gin parsing with clear errors; gin_configs/ lookup."""
import logging
import os

import gin

from tf_convgan.errors import ConfigError
from tf_convgan.training.loop import train

# The gin configs: `gin_configs/` at the top of a checkout, installed as the package data of
# tf_convgan.gin_configs (pyproject.toml maps one to the other).
_PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GIN_CONFIGS_DIR = next((d for d in (os.path.join(_PACKAGE_DIR, "gin_configs"),
                                    os.path.join(os.path.dirname(_PACKAGE_DIR), "gin_configs"))
                        if os.path.isdir(d)), os.path.join(_PACKAGE_DIR, "gin_configs"))


class GinError(ValueError):
    """A gin file or binding that does not parse or names an unknown configurable/parameter."""


def resolve_gin_file(path):
    """A gin file as given, or relative to the gin_configs/ directory (also when given as
    `gin_configs/<name>` outside a checkout)."""
    candidates = [path, os.path.join(GIN_CONFIGS_DIR, path)]
    parts = os.path.normpath(path).split(os.sep)
    if len(parts) > 1 and parts[0] == "gin_configs":
        candidates.append(os.path.join(GIN_CONFIGS_DIR, *parts[1:]))
    for candidate in candidates:
        if os.path.isdir(candidate):
            raise GinError(f"--gin_file {candidate!r} is a directory, not a gin file")
        if os.path.exists(candidate):
            return candidate
    raise FileNotFoundError(f"--gin_file {path!r} does not exist (also looked in {GIN_CONFIGS_DIR})")


class _QuietIncludeLookups(logging.Filter):
    """gin logs an error for every include it then finds on the search path; drop those."""

    def filter(self, record):
        return not str(record.getMessage()).startswith("Path not found:")


def parse(gin_files=(), bindings=(), *, finalize=True):
    """Parses gin files and bindings (bindings win); unknown names raise GinError.

    Includes such as `include 'base/gan_stability.gin'` resolve against gin_configs/. A file
    ending in .yaml/.yml is a GAN_stability config, translated by tf_convgan.gan_stability.config
    and applied in its place in the order of the files."""
    files = [resolve_gin_file(f) for f in gin_files]
    if GIN_CONFIGS_DIR not in gin.config._LOCATION_PREFIXES:  # noqa: SLF001
        gin.add_config_file_search_path(GIN_CONFIGS_DIR)
    quiet = _QuietIncludeLookups()
    logging.getLogger().addFilter(quiet)
    try:
        for path in files:
            if path.lower().endswith((".yaml", ".yml")):
                from tf_convgan.gan_stability import config as gan_stability_config
                gin.parse_config(gan_stability_config.gin_text(path))
            else:
                gin.parse_config_file(path)
        gin.parse_config_files_and_bindings([], list(bindings), finalize_config=finalize)
    except ConfigError:  # a GAN_stability config's own message
        raise
    except (ValueError, KeyError, SyntaxError, TypeError) as e:
        if "'GAN' has denylisted kwarg 'seed'" in str(e):
            raise GinError("gin: GAN.seed is not a parameter: a run has one seed, train.seed "
                           "(set train.seed instead; a GAN.seed line from an older run's "
                           "operative_config.gin can be deleted)") from None
        raise GinError(f"gin: {e}") from e
    except OSError as e:  # an `include` that is missing or not a readable file
        lines = [line.strip() for line in str(e).splitlines()]
        raise GinError(f"gin: {lines[0]}" + (f" ({lines[1]})" if len(lines) > 1 else "")
                       ) from None
    finally:
        logging.getLogger().removeFilter(quiet)


@gin.configurable("run")
def entry_point(main=None):
    """What run.py calls with `model_dir=`: gin `run.main` (e.g. `@dirac_study`), default train."""
    if main is None:
        return train
    if not callable(main):
        raise GinError(f"run.main must be a function such as @train or @dirac_study, got {main!r}")
    return main

"""refinevla-bench: evaluate and fine-tune Vision-Language-Action policies on SimplerEnv.

The code lives in the top-level folders `harness/`, `policies/`, `teacher/` and `train/`; this
package links them under one import name so installing the project never adds generic
top-level modules such as `train` to a user's environment.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("refinevla-bench")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"

"""The build: pure Python, or with the sans-IO cores compiled by mypyc when IEUM_CHAT_COMPILE=1.

Everything else about the package is declared in pyproject.toml. The modules to compile are
listed once, in src/ieum_chat/_build.py.
"""

import os
import runpy
from typing import Any

from setuptools import setup


def _compiled_build() -> dict[str, Any]:
    if os.environ.get("IEUM_CHAT_COMPILE", "0") != "1":
        return {}
    try:
        from mypyc.build import mypycify
    except ImportError:
        # setuptools asks setup.py for the build's requirements before building (PEP 517);
        # mypy, which brings mypyc, is one only for a compiled build.
        return {"setup_requires": ["mypy>=1.10"]}
    here = os.path.dirname(os.path.abspath(__file__))
    modules = runpy.run_path(os.path.join(here, "src", "ieum_chat", "_build.py"))
    paths = [os.path.join("src", *name.split(".")) + ".py" for name in modules["COMPILED_MODULES"]]
    return {"ext_modules": mypycify(paths, opt_level="3")}


setup(**_compiled_build())

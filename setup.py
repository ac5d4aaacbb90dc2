"""Build hook: the metadata lives in setup.cfg; this only names the cffi module,
which setup.cfg cannot express."""

from setuptools import setup

setup(cffi_modules=["wascc/_ffi_build.py:ffibuilder"])

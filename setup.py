"""Only here because cffi compiles the native extension through setuptools' `cffi_modules`."""

from setuptools import setup

setup(cffi_modules=["native/_ffi_build.py:ffibuilder"])

from setuptools import setup

setup(cffi_modules=["setup_build.py:ffibuilder"])

# Type stub for the cffi-generated extension module (built from csrc/cowsim.h).
from typing import Any

ffi: Any
lib: Any

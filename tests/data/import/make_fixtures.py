#!/usr/bin/env python3
"""Generate the .npy / .npz fixtures read by the unit tests in src/import/npy.rs and src/import/zip.rs.

Not run by the tests: the generated files are checked in. Regenerate with
    /work/venv-torch/bin/python tests/data/import/make_fixtures.py
Made with NumPy 2.4.6 (Python 3.11.7). NumPy's savez writes every member with force_zip64=True, so
the local headers carry ZIP64 extra fields even for these tiny arrays: the tests rely on that.

All values are exactly representable in their dtype, so the tests compare with ==.
"""
import os

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))


def path(name):
    return os.path.join(HERE, name)


# small.npy: f32, shape (3, 4), C order: value at flat index i is (i - 5.5) / 4.
small = ((np.arange(12, dtype=np.float32) - 5.5) / 4).reshape(3, 4)
np.save(path("small.npy"), small)

# fortran.npy: f64, shape (2, 3, 4), stored with fortran_order True. In C order, the value at flat
# index i is i * 0.25 - 1, so the reader's C-order output must be exactly that sequence.
c_order = (np.arange(24, dtype=np.float64) * 0.25 - 1).reshape(2, 3, 4)
fortran = np.asfortranarray(c_order)
assert fortran.flags.f_contiguous and not fortran.flags.c_contiguous
np.save(path("fortran.npy"), fortran)

# half.npy: '<f2', shape (7,): zero, one, a plain value, 1/3 rounded to f16 (0.333251953125),
# the largest f16, the smallest subnormal (2^-24), and -inf.
half = np.array([0.0, 1.0, -2.5, 1.0 / 3.0, 65504.0, 2.0**-24, -np.inf], dtype=np.float16)
np.save(path("half.npy"), half)

# v2.npy: format version 2.0 (u32 header length), '<f4', shape (2, 3): value at flat index i is i * 1.5.
v2 = (np.arange(6, dtype=np.float32) * 1.5).reshape(2, 3)
with open(path("v2.npy"), "wb") as f:
    np.lib.format.write_array(f, v2, version=(2, 0))

# pair.npz (np.savez: stored members) and pair_compressed.npz (np.savez_compressed: deflated
# members), each holding, in this order:
#   a: f32, shape (8, 8), value at flat index i is i - 10
#   b: f64, shape (2,), [1.5, -2.25]
a = (np.arange(64, dtype=np.float32) - 10).reshape(8, 8)
b = np.array([1.5, -2.25], dtype=np.float64)
np.savez(path("pair.npz"), a=a, b=b)
np.savez_compressed(path("pair_compressed.npz"), a=a, b=b)

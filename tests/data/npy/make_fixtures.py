"""Regenerate the .npy fixtures of tests/test_npy.c with real numpy (run from anywhere):
    /usr/bin/python3 tests/data/npy/make_fixtures.py
The values are chosen so the C test can state them exactly; rerunning gives identical bytes."""
import os
import numpy as np
from numpy.lib import format as npf

HERE = os.path.dirname(os.path.abspath(__file__))


def save(name, arr, version=None, fortran=False):
    path = os.path.join(HERE, name)
    if fortran:
        arr = np.asfortranarray(arr)
    with open(path, "wb") as f:
        if version is None:
            np.save(f, arr)
        else:
            npf.write_array(f, arr, version=version)


f8_2x3 = np.arange(6, dtype=np.float64).reshape(2, 3) * 0.5 - 1.0      # -1, -0.5, 0, 0.5, 1, 1.5
save("f8_2x3.npy", f8_2x3)
save("f4_4.npy", np.array([0.1, -2.5, 1e-30, 3.0e38], dtype=np.float32))
save("f8_scalar.npy", np.array(3.25))
save("f8_1x2x1x3.npy", (np.arange(6, dtype=np.float64) - 2.5).reshape(1, 2, 1, 3))
save("f8_5.npy", np.array([1.0, -0.0, 1e-300, 1e300, np.pi]))
save("v2_f8_2x2x2.npy", np.arange(8, dtype=np.float64).reshape(2, 2, 2) / 8.0, version=(2, 0))
save("v3_f4_3.npy", np.array([0.5, 0.25, -8.0], dtype=np.float32), version=(3, 0))
# files numpy writes that the reader must refuse
save("bad_be_f8.npy", np.array([1.0, 2.0], dtype=">f8"))
save("bad_i4.npy", np.array([1, 2, 3], dtype="<i4"))
save("bad_fortran.npy", f8_2x3, fortran=True)
save("bad_5d.npy", np.zeros((1, 1, 1, 1, 2)))
save("bad_empty.npy", np.zeros((0, 3)))

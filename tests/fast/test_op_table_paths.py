"""The op table's forward and gradcheck for every op that has a numba kernel, on both paths.

The table itself (tests/ops) runs once, with the fast path as the environment has it (on in
CI, where numba is installed); this runs the ops with kernels again on each path, so neither
path goes untested whatever is installed."""

import re

import numpy as np
import pytest

import backprop as bp
from tests.ops.cases import CASES
from tests.ops.test_ops import _as_tuple, _bp_inputs, _rng

FAST_CASES = [c for c in CASES
              if re.search(r"lstm|gru|rnn|conv|pool|cross_entropy|batch_norm", c.name)]


@pytest.mark.parametrize("case", FAST_CASES, ids=[c.name for c in FAST_CASES])
def test_forward_and_gradcheck_on_each_path(case, path):
    arrays = case.make_inputs(_rng(case))
    outs = _as_tuple(case.fn(*_bp_inputs(arrays)))
    refs = _as_tuple(case.ref(*[a.copy() for a in arrays]))
    for k, (out, ref) in enumerate(zip(outs, refs)):
        np.testing.assert_allclose(out.data, np.asarray(ref), rtol=case.fwd_rtol,
                                   atol=case.fwd_atol, err_msg=f"{case.name} ({path}): output {k}")
    if case.differentiable:
        inputs = _bp_inputs(arrays)
        assert bp.gradcheck(case.fn, tuple(inputs), eps=case.eps, atol=case.atol,
                            rtol=case.rtol)

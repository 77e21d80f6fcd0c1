"""Convolution and pooling layers: a loop-based reference, torch in value and gradient (torch's
weights loaded through state_dict), gradcheck / gradgradcheck of every functional form, dtypes,
initialisation and shape errors."""

from __future__ import annotations

import math

import numpy as np
import pytest

import backprop as bp
from backprop import nn
from backprop.nn import functional as F


def _leaf(a, dtype=np.float64) -> bp.Tensor:
    return bp.tensor(np.asarray(a, dtype=dtype), requires_grad=True)


def _conv2d_loops(x, w, b, stride, padding, dilation, groups):
    """The definition, one multiply-add at a time (tiny shapes only)."""
    n, c, h, wd = x.shape
    o, cg, kh, kw = w.shape
    (sh, sw), (ph, pw), (dh, dw) = stride, padding, dilation
    oh = (h + 2 * ph - dh * (kh - 1) - 1) // sh + 1
    ow = (wd + 2 * pw - dw * (kw - 1) - 1) // sw + 1
    og = o // groups
    y = np.zeros((n, o, oh, ow))
    for b_ in range(n):
        for oc in range(o):
            g = oc // og
            for i in range(oh):
                for j in range(ow):
                    acc = 0.0 if b is None else b[oc]
                    for ci in range(cg):
                        for p in range(kh):
                            for q in range(kw):
                                r, s = i * sh - ph + p * dh, j * sw - pw + q * dw
                                if 0 <= r < h and 0 <= s < wd:
                                    acc += w[oc, ci, p, q] * x[b_, g * cg + ci, r, s]
                    y[b_, oc, i, j] = acc
    return y


CONV_COMBOS = [
    dict(),
    dict(stride=2),
    dict(padding=1, bias=False),
    dict(stride=(2, 1), padding=(0, 2), dilation=(1, 2)),
    dict(dilation=2, padding=2),
    dict(groups=2, stride=2, padding=1),
    dict(groups=4, padding=(1, 0)),
]


def _ids(combos):
    return [",".join(f"{k}={v}" for k, v in c.items()) or "default" for c in combos]


@pytest.mark.parametrize("kw", CONV_COMBOS, ids=_ids(CONV_COMBOS))
def test_conv2d_matches_loop_reference(kw):
    bp.manual_seed(0)
    layer = nn.Conv2d(4, 8, (3, 2), dtype=bp.float64, **kw)
    x = np.random.default_rng(1).standard_normal((2, 4, 7, 6))
    got = layer(bp.tensor(x)).data
    b = None if layer.bias is None else layer.bias.data
    want = _conv2d_loops(x, layer.weight.data, b, layer.stride, layer.padding, layer.dilation,
                         layer.groups)
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


def test_conv2d_same_padding_keeps_size_and_matches_loops():
    bp.manual_seed(0)
    layer = nn.Conv2d(2, 3, 3, padding="same", dilation=2, dtype=bp.float64)
    x = np.random.default_rng(2).standard_normal((1, 2, 6, 5))
    got = layer(bp.tensor(x)).data
    want = _conv2d_loops(x, layer.weight.data, layer.bias.data, (1, 1), (2, 2), (2, 2), 1)
    assert got.shape == (1, 3, 6, 5)
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


# --- against torch: values and gradients with torch's own weights ---


def _torch():
    return pytest.importorskip("torch")


def _load_from_torch(ours, theirs):
    state = {k: v.detach().numpy().copy() for k, v in theirs.state_dict().items()}
    assert list(state) == list(ours.state_dict())
    ours.load_state_dict(state)


def _compare(ours, theirs, x, rtol=1e-10, atol=1e-10):
    """Forward and backward of both layers on x (float64); params and input grads compared."""
    torch = _torch()
    xb, xt = _leaf(x), torch.tensor(x, requires_grad=True)
    yb, yt = ours(xb), theirs(xt)
    if isinstance(yt, tuple):
        np.testing.assert_array_equal(yb[1].data, yt[1].numpy())
        yb, yt = yb[0], yt[0]
    assert yb.shape == tuple(yt.shape)
    np.testing.assert_allclose(yb.data, yt.detach().numpy(), rtol=rtol, atol=atol)
    g = np.random.default_rng(3).standard_normal(yb.shape)
    yb.backward(bp.tensor(g))
    yt.backward(torch.tensor(g))
    np.testing.assert_allclose(xb.grad.data, xt.grad.numpy(), rtol=rtol, atol=atol)
    for (name, p), (tname, tp) in zip(ours.named_parameters(), theirs.named_parameters()):
        assert name == tname
        np.testing.assert_allclose(p.grad.data, tp.grad.numpy(), rtol=rtol, atol=atol,
                                   err_msg=name)


@pytest.mark.parametrize("kw", CONV_COMBOS + [dict(padding="same", dilation=(1, 2)),
                                              dict(padding="valid")],
                         ids=_ids(CONV_COMBOS) + ["same", "valid"])
def test_conv2d_matches_torch(kw):
    torch = _torch()
    torch.manual_seed(0)
    theirs = torch.nn.Conv2d(4, 8, (3, 2), dtype=torch.float64, **kw)
    ours = nn.Conv2d(4, 8, (3, 2), dtype=bp.float64, **kw)
    _load_from_torch(ours, theirs)
    _compare(ours, theirs, np.random.default_rng(0).standard_normal((2, 4, 7, 6)))


@pytest.mark.parametrize("kw", [dict(), dict(stride=2, padding=2, dilation=2, bias=False),
                                dict(groups=3, padding="same")],
                         ids=["default", "stride_pad_dil", "groups_same"])
def test_conv1d_matches_torch(kw):
    torch = _torch()
    torch.manual_seed(0)
    theirs = torch.nn.Conv1d(3, 6, 3, dtype=torch.float64, **kw)
    ours = nn.Conv1d(3, 6, 3, dtype=bp.float64, **kw)
    _load_from_torch(ours, theirs)
    _compare(ours, theirs, np.random.default_rng(0).standard_normal((2, 3, 11)))


TRANSPOSE_COMBOS = [
    dict(),
    dict(stride=2),
    dict(stride=2, padding=1, output_padding=1),
    dict(stride=(3, 2), padding=(1, 0), output_padding=(2, 1), bias=False),
    dict(groups=2, dilation=2, stride=2, output_padding=1),
]


@pytest.mark.parametrize("kw", TRANSPOSE_COMBOS, ids=_ids(TRANSPOSE_COMBOS))
def test_conv_transpose2d_matches_torch(kw):
    torch = _torch()
    torch.manual_seed(0)
    theirs = torch.nn.ConvTranspose2d(4, 6, (3, 2), dtype=torch.float64, **kw)
    ours = nn.ConvTranspose2d(4, 6, (3, 2), dtype=bp.float64, **kw)
    _load_from_torch(ours, theirs)
    _compare(ours, theirs, np.random.default_rng(0).standard_normal((2, 4, 4, 5)))


def test_conv_transpose2d_output_size_argument():
    torch = _torch()
    theirs = torch.nn.ConvTranspose2d(2, 3, 3, stride=2, padding=1, dtype=torch.float64)
    ours = nn.ConvTranspose2d(2, 3, 3, stride=2, padding=1, dtype=bp.float64)
    _load_from_torch(ours, theirs)
    x = np.random.default_rng(0).standard_normal((1, 2, 4, 4))
    y = ours(bp.tensor(x), output_size=(8, 7))
    yt = theirs(torch.tensor(x), output_size=(8, 7))
    assert y.shape == (1, 3, 8, 7)
    np.testing.assert_allclose(y.data, yt.detach().numpy(), rtol=1e-12, atol=1e-12)


def _distinct(shape, seed=0):
    """Values with no ties (max pooling picks a unique element)."""
    return np.random.default_rng(seed).permutation(math.prod(shape)).reshape(shape) / 7.0


POOL_COMBOS = [
    dict(kernel_size=2),
    dict(kernel_size=3, stride=1, padding=1),
    dict(kernel_size=(3, 2), stride=(2, 1), padding=(1, 0), dilation=(1, 2)),
    dict(kernel_size=2, stride=1, return_indices=True),
    dict(kernel_size=3, stride=2, padding=1, dilation=2, return_indices=True),
    dict(kernel_size=2, ceil_mode=True, return_indices=True),
    dict(kernel_size=3, stride=2, padding=1, ceil_mode=True),
    dict(kernel_size=(2, 3), stride=(3, 2), dilation=(2, 1), ceil_mode=True),
]


@pytest.mark.parametrize("kw", POOL_COMBOS, ids=_ids(POOL_COMBOS))
def test_max_pool2d_matches_torch(kw):
    torch = _torch()
    _compare(nn.MaxPool2d(**kw), torch.nn.MaxPool2d(**kw), _distinct((2, 3, 7, 8)))


@pytest.mark.parametrize("kw", [dict(kernel_size=2), dict(kernel_size=3, stride=1, padding=1),
                                dict(kernel_size=2, dilation=3, return_indices=True),
                                dict(kernel_size=3, stride=2, ceil_mode=True)],
                         ids=["k2", "overlap_pad", "dilation_indices", "ceil"])
def test_max_pool1d_matches_torch(kw):
    torch = _torch()
    _compare(nn.MaxPool1d(**kw), torch.nn.MaxPool1d(**kw), _distinct((2, 3, 10)))


def test_max_pool2d_ties_route_gradient_to_one_element_like_torch():
    torch = _torch()
    x = np.zeros((1, 1, 4, 4))  # every window tied: torch sends the gradient to the first
    _compare(nn.MaxPool2d(3, stride=1), torch.nn.MaxPool2d(3, stride=1), x)


AVG_COMBOS = [
    dict(kernel_size=2),
    dict(kernel_size=3, stride=1, padding=1),
    dict(kernel_size=3, stride=2, padding=1, count_include_pad=False),
    dict(kernel_size=(3, 2), stride=(1, 2), padding=(1, 1), count_include_pad=False),
    dict(kernel_size=2, stride=1, divisor_override=3),
    dict(kernel_size=2, ceil_mode=True),
    dict(kernel_size=3, stride=2, padding=1, ceil_mode=True),
    dict(kernel_size=(3, 2), stride=2, padding=1, ceil_mode=True, count_include_pad=False),
]


@pytest.mark.parametrize("kw", AVG_COMBOS, ids=_ids(AVG_COMBOS))
def test_avg_pool2d_matches_torch(kw):
    torch = _torch()
    _compare(nn.AvgPool2d(**kw), torch.nn.AvgPool2d(**kw),
             np.random.default_rng(0).standard_normal((2, 3, 7, 6)))


@pytest.mark.parametrize("size", [1, (2, 3), (5, 4), (None, 2), (7, 6)],
                         ids=["1", "2x3", "5x4", "None_2", "identity"])
def test_adaptive_avg_pool2d_matches_torch(size):
    torch = _torch()
    _compare(nn.AdaptiveAvgPool2d(size), torch.nn.AdaptiveAvgPool2d(size),
             np.random.default_rng(0).standard_normal((2, 3, 7, 6)))


def test_lenet_forward_backward_matches_torch():
    torch = _torch()

    def net(m):
        return m.Sequential(m.Conv2d(1, 4, 5), m.ReLU(), m.MaxPool2d(2), m.Conv2d(4, 8, 3),
                            m.ReLU(), m.AvgPool2d(2), m.Flatten(), m.Linear(32, 10))

    torch.manual_seed(0)
    theirs = net(torch.nn).double()
    ours = net(nn)
    for p in ours.parameters():  # float64 parameters, so the comparison is exact
        p.data = p.data.astype(np.float64)
    _load_from_torch(ours, theirs)
    _compare(ours, theirs, np.random.default_rng(0).standard_normal((3, 1, 16, 16)))


# --- gradcheck / gradgradcheck of the functional forms (float64, small shapes) ---


def _gradchecks(fn, *arrays):
    inputs = tuple(_leaf(a) for a in arrays)
    assert bp.gradcheck(fn, inputs)
    assert bp.gradgradcheck(fn, inputs)


FUNCTIONAL_CONV = [
    dict(),
    dict(stride=2, padding=1),
    dict(stride=(1, 2), padding=(2, 0), dilation=(2, 1)),
    dict(groups=2, dilation=2, padding="same"),
    dict(groups=2, stride=2, padding="valid"),
]


@pytest.mark.parametrize("kw", FUNCTIONAL_CONV, ids=_ids(FUNCTIONAL_CONV))
def test_conv2d_gradcheck(kw):
    rng = np.random.default_rng(0)
    _gradchecks(lambda x, w, b: F.conv2d(x, w, b, **kw), rng.standard_normal((2, 4, 5, 5)),
                rng.standard_normal((4, 4 // kw.get("groups", 1), 3, 2)), rng.standard_normal(4))


@pytest.mark.parametrize("kw", [dict(), dict(stride=2, padding=1, dilation=2, groups=3)],
                         ids=["default", "combo"])
def test_conv1d_gradcheck(kw):
    rng = np.random.default_rng(1)
    _gradchecks(lambda x, w: F.conv1d(x, w, **kw), rng.standard_normal((2, 3, 8)),
                rng.standard_normal((6, 3 // kw.get("groups", 1), 3)))


@pytest.mark.parametrize("kw", [dict(), dict(stride=2, padding=1, output_padding=1),
                                dict(stride=(2, 1), groups=2, dilation=(1, 2))],
                         ids=["default", "stride_pad_outpad", "groups_dilation"])
def test_conv_transpose2d_gradcheck(kw):
    rng = np.random.default_rng(2)
    _gradchecks(lambda x, w, b: F.conv_transpose2d(x, w, b, **kw),
                rng.standard_normal((2, 4, 3, 3)), rng.standard_normal((4, 2, 3, 2)),
                rng.standard_normal(2 * kw.get("groups", 1)))


@pytest.mark.parametrize("kw", [dict(kernel_size=2), dict(kernel_size=3, stride=1, padding=1),
                                dict(kernel_size=2, stride=1, dilation=2),
                                dict(kernel_size=2, ceil_mode=True)],
                         ids=["k2", "overlap_pad", "dilation", "ceil"])
def test_max_pool2d_gradcheck(kw):
    _gradchecks(lambda x: F.max_pool2d(x, **kw), _distinct((2, 2, 5, 5)))


def test_max_pool1d_gradcheck():
    _gradchecks(lambda x: F.max_pool1d(x, 3, stride=2, padding=1), _distinct((2, 3, 7)))


@pytest.mark.parametrize("kw", [dict(kernel_size=2), dict(kernel_size=3, stride=2, padding=1),
                                dict(kernel_size=3, stride=1, padding=1,
                                     count_include_pad=False),
                                dict(kernel_size=2, stride=2, padding=1, ceil_mode=True)],
                         ids=["k2", "stride_pad", "exclude_pad", "ceil"])
def test_avg_pool2d_gradcheck(kw):
    _gradchecks(lambda x: F.avg_pool2d(x, **kw),
                np.random.default_rng(3).standard_normal((2, 2, 5, 5)))


def test_adaptive_avg_pool2d_gradcheck():
    _gradchecks(lambda x: F.adaptive_avg_pool2d(x, (2, 3)),
                np.random.default_rng(4).standard_normal((2, 2, 5, 7)))


# --- dtypes, unbatched inputs, initialisation, modules ---


@pytest.mark.parametrize("layer", [
    lambda: nn.Conv2d(3, 4, 3, padding=1, groups=1),
    lambda: nn.Conv1d(3, 4, 3),
    lambda: nn.ConvTranspose2d(3, 4, 3, stride=2),
    lambda: nn.MaxPool2d(2),
    lambda: nn.AvgPool2d(3, 1, 1, count_include_pad=False),
    lambda: nn.AdaptiveAvgPool2d(2),
], ids=["conv2d", "conv1d", "conv_transpose2d", "max_pool2d", "avg_pool2d", "adaptive"])
def test_float32_stays_float32(layer):
    m = layer()
    shape = (2, 3, 9) if isinstance(m, nn.Conv1d) else (2, 3, 6, 6)
    x = _leaf(np.random.default_rng(0).standard_normal(shape), np.float32)
    y = m(x)
    assert y.dtype == np.float32
    y.sum().backward()
    assert x.grad.dtype == np.float32
    for p in m.parameters():
        assert p.dtype == np.float32 and p.grad.dtype == np.float32


def test_unbatched_inputs():
    x = bp.randn(3, 8, 8)
    assert nn.Conv2d(3, 5, 3)(x).shape == (5, 6, 6)
    assert nn.MaxPool2d(2)(x).shape == (3, 4, 4)
    assert nn.Conv1d(3, 5, 3)(bp.randn(3, 10)).shape == (5, 8)
    assert nn.MaxPool1d(2)(bp.randn(3, 10)).shape == (3, 5)


def test_default_init_matches_pytorch_bounds_and_state_dict_names():
    bp.manual_seed(0)
    conv = nn.Conv2d(6, 16, 5)
    bound = 1 / math.sqrt(6 * 25)  # kaiming_uniform_(a=√5) and the bias: U(±1/√fan_in)
    assert conv.weight.shape == (16, 6, 5, 5) and conv.bias.shape == (16,)
    assert abs(conv.weight.data).max() <= bound and abs(conv.weight.data).max() > 0.9 * bound
    assert abs(conv.bias.data).max() <= bound
    assert list(conv.state_dict()) == ["weight", "bias"]
    t = nn.ConvTranspose2d(4, 6, 3, groups=2)
    assert t.weight.shape == (4, 3, 3, 3)
    assert abs(t.weight.data).max() <= 1 / math.sqrt(3 * 9)
    assert nn.Conv2d(2, 2, 3, bias=False).bias is None
    assert list(nn.Conv1d(2, 2, 3, bias=False).state_dict()) == ["weight"]


def test_repr():
    assert repr(nn.Conv2d(1, 6, 5)) == "Conv2d(1, 6, kernel_size=(5, 5), stride=(1, 1))"
    assert "groups=2" in repr(nn.Conv2d(2, 4, 3, groups=2, bias=False))
    assert "kernel_size=2" in repr(nn.MaxPool2d(2))


def test_max_pool_indices_are_flat_positions():
    x = bp.tensor(np.arange(16.0).reshape(1, 1, 4, 4))
    y, idx = F.max_pool2d(x, 2, return_indices=True)
    assert idx.dtype == np.int64 and not idx.requires_grad
    np.testing.assert_array_equal(idx.data, [[[[5, 7], [13, 15]]]])
    np.testing.assert_array_equal(y.data, [[[[5.0, 7.0], [13.0, 15.0]]]])


# --- errors ---


def test_wrong_channel_count_names_expected_and_actual_shapes():
    with pytest.raises(bp.ShapeError, match=r"\(N, 3, H, W\).*\(2, 4, 8, 8\)"):
        nn.Conv2d(3, 6, 3)(bp.randn(2, 4, 8, 8))
    with pytest.raises(bp.ShapeError, match=r"\(N, 4, L\).*\(2, 3, 8\)"):
        nn.Conv1d(4, 6, 3)(bp.randn(2, 3, 8))
    with pytest.raises(bp.ShapeError, match=r"\(N, 4, H, W\).*\(1, 2, 5, 5\)"):
        nn.ConvTranspose2d(4, 2, 3)(bp.randn(1, 2, 5, 5))
    with pytest.raises(bp.ShapeError, match="groups=2"):
        F.conv2d(bp.randn(1, 3, 5, 5), bp.randn(4, 2, 3, 3), groups=2)


def test_input_smaller_than_kernel():
    with pytest.raises(bp.ShapeError, match=r"\(1, 1, 4, 4\).*smaller than the kernel"):
        nn.Conv2d(1, 2, 5)(bp.randn(1, 1, 4, 4))
    with pytest.raises(bp.ShapeError, match="effective size 5 with dilation 2"):
        F.conv2d(bp.randn(1, 1, 4, 4), bp.randn(1, 1, 3, 3), dilation=2)
    with pytest.raises(bp.ShapeError, match="smaller than the kernel"):
        F.max_pool2d(bp.randn(1, 1, 2, 2), 3)


def test_wrong_ranks_and_arguments():
    with pytest.raises(bp.ShapeError, match=r"4-D .* got shape \(8, 8\)"):
        nn.Conv2d(1, 1, 3)(bp.randn(8, 8))
    with pytest.raises(bp.ShapeError, match="bias of shape"):
        F.conv2d(bp.randn(1, 2, 5, 5), bp.randn(3, 2, 3, 3), bp.randn(4))
    with pytest.raises(ValueError, match="groups"):
        nn.Conv2d(3, 4, 3, groups=2)
    with pytest.raises(ValueError, match="strided"):
        nn.Conv2d(3, 4, 3, stride=2, padding="same")
    with pytest.raises(ValueError, match="padding"):
        F.conv2d(bp.randn(1, 1, 5, 5), bp.randn(1, 1, 3, 3), padding="full")
    with pytest.raises(ValueError, match="half the kernel"):
        F.max_pool2d(bp.randn(1, 1, 5, 5), 2, padding=2)
    with pytest.raises(ValueError, match="output_padding"):
        F.conv_transpose2d(bp.randn(1, 1, 3, 3), bp.randn(1, 1, 3, 3), stride=2,
                           output_padding=2)
    with pytest.raises(NotImplementedError, match="padding_mode"):
        nn.Conv2d(1, 1, 3, padding_mode="reflect")


# --- the im2col cache and recycled workspaces ---


def test_training_steps_match_torch_with_recycled_buffers():
    """Several SGD steps: the im2col columns cached for the weight gradient and the recycled
    workspaces must never leak one step's values into the next."""
    torch = _torch()

    def net(m):
        return m.Sequential(m.Conv2d(2, 4, 3, padding=1), m.ReLU(), m.MaxPool2d(2),
                            m.Conv2d(4, 4, 3, groups=2), m.Flatten(), m.Linear(16, 3))

    torch.manual_seed(0)
    theirs = net(torch.nn).double()
    ours = net(nn)
    for p in ours.parameters():
        p.data = p.data.astype(np.float64)
    _load_from_torch(ours, theirs)
    opt = bp.optim.SGD(ours.parameters(), lr=0.1, momentum=0.9)
    topt = torch.optim.SGD(theirs.parameters(), lr=0.1, momentum=0.9)
    rng = np.random.default_rng(0)
    for _ in range(3):
        x, t = rng.standard_normal((5, 2, 8, 8)), rng.integers(0, 3, 5)
        opt.zero_grad()
        F.cross_entropy(ours(bp.tensor(x)), bp.tensor(t)).backward()
        opt.step()
        topt.zero_grad()
        torch.nn.functional.cross_entropy(theirs(torch.tensor(x)), torch.tensor(t)).backward()
        topt.step()
    for (name, p), tp in zip(ours.named_parameters(), theirs.parameters()):
        np.testing.assert_allclose(p.data, tp.detach().numpy(), rtol=1e-10, atol=1e-12,
                                   err_msg=name)


def test_second_backward_with_retain_graph_recomputes_columns():
    x = _leaf(np.random.default_rng(0).standard_normal((2, 2, 5, 5)))
    w = _leaf(np.random.default_rng(1).standard_normal((3, 2, 3, 3)))
    y = F.conv2d(x, w, stride=2, padding=1).sum()
    y.backward(retain_graph=True)
    first = w.grad.data.copy()
    y.backward()
    np.testing.assert_allclose(w.grad.data, 2 * first, rtol=1e-12)


def test_weight_gradient_only_and_input_gradient_only():
    rng = np.random.default_rng(0)
    x, w = rng.standard_normal((2, 2, 5, 5)), rng.standard_normal((3, 2, 3, 3))
    xt, wt = _leaf(x), _leaf(w)
    (gw,) = bp.autograd.grad(F.conv2d(bp.tensor(x), wt).sum(), [wt])
    (gx,) = bp.autograd.grad(F.conv2d(xt, bp.tensor(w)).sum(), [xt])
    full = bp.autograd.grad(F.conv2d(xt, wt).sum(), [xt, wt])
    np.testing.assert_allclose(gw.data, full[1].data, rtol=1e-12)
    np.testing.assert_allclose(gx.data, full[0].data, rtol=1e-12)

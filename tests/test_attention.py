"""The one attention path equals a float64 naive softmax(QK^T/sqrt(d) + bias + mask)V reference."""

from __future__ import annotations

import math

import pytest
import torch

from transgan_lab.trainers.models import attention as A


def _reference(x, attn, mask=None):
    # float64 reference through the module's own weights
    x64 = x.double()
    B, N, C = x.shape
    h, d = attn.heads, attn.head_dim
    qkv = (x64 @ attn.qkv.weight.double().T).reshape(B, N, 3, h, d).permute(2, 0, 3, 1, 4)
    q, k, v = qkv[0], qkv[1], qkv[2]
    logits = q @ k.transpose(-2, -1) / math.sqrt(d)
    if attn.rel_pos is not None:
        logits = logits + attn.rel_pos().double().unsqueeze(0)
    if mask is not None:
        logits = logits + mask.double()
    w = logits.softmax(-1)
    out = (w @ v).transpose(1, 2).reshape(B, N, C)
    return out @ attn.proj.weight.double().T + attn.proj.bias.double(), w


@pytest.mark.parametrize("rel_pos", [False, True])
@pytest.mark.parametrize("kind", [None, "band1d", "box2d"])
def test_attention_matches_float64_reference(rel_pos, kind):
    torch.manual_seed(0)
    side, dim, heads = 4, 32, 4
    attn = A.Attention(dim=dim, heads=heads, rel_pos_window=side if rel_pos else None)
    if rel_pos:  # make the bias large enough to matter
        with torch.no_grad():
            attn.rel_pos.table.normal_(0, 1.0)
    x = torch.randn(3, side * side, dim)
    mask = A.locality_mask(side=side, width=1, kind=kind) if kind else None
    out = attn(x, mask)
    ref, _ = _reference(x, attn, mask)
    torch.testing.assert_close(out.double(), ref, rtol=1e-5, atol=1e-5)


def test_masked_positions_get_zero_weight():
    torch.manual_seed(1)
    side, width = 5, 2
    mask = A.locality_mask(side=side, width=width, kind="band1d")
    N = side * side
    q, k = torch.randn(2, 1, N, 8), torch.randn(2, 1, N, 8)
    v = torch.eye(N).expand(2, 1, N, N).contiguous()  # AV with identity V returns the weights
    weights = A.sdpa(q, k, v, mask)
    i = torch.arange(N)
    far = (i[:, None] - i[None, :]).abs() > width
    assert far.sum() > 0
    assert weights[..., far].abs().max().item() == 0.0
    torch.testing.assert_close(weights.sum(-1), torch.ones(2, 1, N))


def test_box2d_mask_is_a_2d_neighbourhood():
    m = A.locality_mask(side=4, width=1, kind="box2d")
    allowed = torch.isfinite(m)
    # token (1, 1) = index 5 sees its 3x3 neighbourhood only
    assert sorted(allowed[5].nonzero().flatten().tolist()) == [0, 1, 2, 4, 5, 6, 8, 9, 10]
    band = torch.isfinite(A.locality_mask(side=4, width=1, kind="band1d"))
    assert band[5].nonzero().flatten().tolist() == [4, 5, 6]
    with pytest.raises(ValueError, match="band1d"):
        A.locality_mask(side=4, width=1, kind="ring")


def test_relative_bias_depends_only_on_offset():
    rp = A.RelativePositionBias(window=3, heads=2)
    b = rp()
    assert b.shape == (2, 9, 9)
    # (0,0)->(1,1) and (1,1)->(2,2) share the offset (1,1)
    torch.testing.assert_close(b[:, 0, 4], b[:, 4, 8])
    assert not torch.equal(b[:, 0, 4], b[:, 0, 1])
    padded = A.RelativePositionBias(window=3, heads=2, prefix_tokens=1)()
    assert padded.shape == (2, 10, 10) and padded[:, 0].abs().sum() == 0 and padded[:, :, 0].abs().sum() == 0


def test_math_sdpa_supports_double_backward_through_attention():
    torch.manual_seed(2)
    attn = A.Attention(dim=16, heads=4, rel_pos_window=3)
    x = torch.randn(2, 9, 16, requires_grad=True)
    mask = A.locality_mask(side=3, width=2, kind="band1d")
    with A.math_sdpa():
        (g,) = torch.autograd.grad(attn(x, mask).square().sum(), x, create_graph=True)
    g.square().sum().backward()
    assert attn.qkv.weight.grad is not None and torch.isfinite(attn.qkv.weight.grad).all()
    assert attn.qkv.weight.grad.abs().sum() > 0


def test_math_sdpa_keeps_bf16_instead_of_upcasting_and_restores_the_setting():
    """torch's math backend upcasts bf16 to fp32 by default; the GP pass keeps autocast's dtype."""
    from torch.nn.attention import SDPBackend, sdpa_kernel

    torch.manual_seed(3)
    q, k, v = (torch.randn(2, 2, 16, 8).bfloat16() for _ in range(3))
    bias = A.locality_mask(side=4, width=1, kind="box2d").bfloat16()
    exact = A.naive_attention(q.double(), k.double(), v.double(), bias.double())
    with sdpa_kernel(SDPBackend.MATH):
        upcast = A.sdpa(q, k, v, bias)  # torch's default: computed in fp32, rounded to bf16 at the end
    flag = torch.backends.cuda.fp16_bf16_reduction_math_sdp_allowed
    before = flag()
    ctx = A.math_sdpa()
    with ctx:
        with ctx:  # re-entered, as activation checkpointing does
            inner = A.sdpa(q, k, v, bias)
        assert flag() is True
        assert torch.equal(A.sdpa(q, k, v, bias), inner)
    assert flag() is before
    assert inner.dtype == torch.bfloat16 and not torch.equal(inner, upcast)
    err_bf16, err_upcast = (inner.double() - exact).abs().max(), (upcast.double() - exact).abs().max()
    assert err_upcast < 0.01 and err_upcast < err_bf16 < 0.1, (err_upcast, err_bf16)


def test_every_module_calls_the_module_global_sdpa(monkeypatch):
    calls = []

    def spy(q, k, v, bias):
        calls.append(q.shape)
        return A.naive_attention(q, k, v, bias)

    monkeypatch.setattr(A, "sdpa", spy)
    attn = A.Attention(dim=8, heads=2)
    cross = A.CrossAttention(dim=8, context_dim=6, heads=2)
    x = torch.randn(1, 4, 8)
    attn(x)
    cross(x, torch.randn(1, 3, 6))
    assert len(calls) == 2


def test_noise_injection_starts_at_zero_strength():
    torch.manual_seed(3)
    a = A.Attention(dim=8, heads=2, noise_injection=True)
    x = torch.randn(2, 4, 8)
    torch.testing.assert_close(a(x), a(x))  # strength 0: noise has no effect yet
    with torch.no_grad():
        a.noise_strength.fill_(1.0)
    assert not torch.allclose(a(x), a(x))


def test_bad_heads_is_a_clear_error():
    with pytest.raises(ValueError, match="not divisible by heads"):
        A.Attention(dim=10, heads=4)


def test_bf16_autocast_keeps_mask_and_bias_working():
    torch.manual_seed(4)
    attn = A.Attention(dim=32, heads=4, rel_pos_window=4)
    x = torch.randn(2, 16, 32)
    mask = A.locality_mask(side=4, width=1, kind="box2d")
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = attn(x, mask)
    assert out.dtype == torch.bfloat16
    ref, _ = _reference(x, attn, mask)
    torch.testing.assert_close(out.double(), ref, rtol=0.05, atol=0.05)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA: the fused SDPA kernels exist only on GPU")
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_fused_cuda_kernel_accepts_the_merged_bias(dtype):
    from torch.nn.attention import SDPBackend, sdpa_kernel

    torch.manual_seed(5)
    side = 8
    attn = A.Attention(dim=64, heads=4, rel_pos_window=side, prefix_tokens=1).cuda()
    with torch.no_grad():
        attn.rel_pos.table.normal_(0, 1.0)
    x = torch.randn(4, side * side + 1, 64, device="cuda")  # 65 tokens: [cls] + grid, an odd length
    mask = torch.nn.functional.pad(A.locality_mask(side=side, width=3, kind="band1d", device="cuda"), (1, 0, 1, 0))
    with (
        sdpa_kernel(SDPBackend.EFFICIENT_ATTENTION),
        torch.autocast("cuda", dtype=dtype, enabled=dtype != torch.float32),
    ):
        out = attn(x, mask)
    ref, _ = _reference(x, attn, mask)
    tol = 2e-3 if dtype == torch.float32 else 0.05
    torch.testing.assert_close(out.double(), ref, rtol=tol, atol=tol)

"""A register-blocked GEMM tile for numba kernels, written in LLVM IR.

``tile(A, a_off, sa_r, B, b_off, sb_r, C, c_off, ldc, r_len, accumulate)`` computes, for
``i < MR`` and ``j < NR``::

    acc[i, j] = sum over r < r_len of A[a_off + i * SA_I + r * sa_r] * B[b_off + r * sb_r + j]
    C[c_off + i * ldc + j] = acc[i, j]          (or += when ``accumulate``)

on flat float32 arrays. ``SA_I`` (the step between the broadcast operand's rows) is fixed when
the tile is made; everything else is a run-time value.

Why not numpy's BLAS: a convolution's products are narrow (M = 32 or 64 filters), so OpenBLAS
spends much of its time packing the long operand, which is the im2col matrix we have just
written. A kernel that reads the columns where im2col leaves them runs the AlexNet-R products
at ~100 GFLOP/s per core against OpenBLAS's 55-85 (Zen 4). Why not a numba loop: LLVM keeps a
numba array's accumulators in memory (it cannot prove they do not alias the inputs) and the
loop runs scalar at ~5 GFLOP/s. Here the accumulators are SSA values -- ``MR * NV`` vectors
carried around the loop by phi nodes -- so they live in registers by construction; each step
loads ``NV`` vectors of B, broadcasts ``MR`` scalars of A, and issues ``MR * NV`` fused
multiply-adds (``llvm.fma``), the classic outer-product micro-kernel of GotoBLAS/BLIS.

The shape follows the CPU numba compiles for: with AVX-512, 16-float vectors and an 8 x 32 tile
(16 accumulators, 2 B vectors and a broadcast of the 32 vector registers); otherwise 8-float
vectors and a 2 x 32 tile (8 accumulators, 4 B vectors and a broadcast of 16). ``NR`` is 32
either way.
Numba compiles for the host CPU and keys its on-disk cache by it, so the choice and the cached
machine code always agree. (Numba checks only a cached function's own source file: after
editing this file, clear the callers' caches -- ``__pycache__/conv_panels.*.nb[ci]``.)
"""
from __future__ import annotations

from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.core.registry import cpu_target
from numba.extending import intrinsic

__all__ = ["MR", "NR", "make_tile"]

# the features numba compiles for (the host's, or NUMBA_CPU_FEATURES)
_AVX512 = "+avx512f" in cpu_target.target_context.codegen()._tm_features
VW = 16 if _AVX512 else 8          # floats per vector register
NV = 32 // VW                      # vectors per tile row
NR = NV * VW                       # tile columns (B's vector axis)
MR = 8 if _AVX512 else 2           # tile rows (A's broadcast axis)

_I64 = ir.IntType(64)
_I32 = ir.IntType(32)


def _const(v: int):
    return ir.Constant(_I64, v)


def make_tile(sa_i: int):
    """The tile intrinsic whose broadcast operand steps ``sa_i`` elements between rows."""

    @intrinsic
    def tile(typingctx, a, a_off, sa_r, b, b_off, sb_r, c, c_off, ldc, r_len, accumulate):
        sig = types.void(a, a_off, sa_r, b, b_off, sb_r, c, c_off, ldc, r_len, accumulate)

        def codegen(context, builder, signature, args):
            (a_arr, a_off_, sa_r_, b_arr, b_off_, sb_r_, c_arr, c_off_, ldc_, r_len_,
             accumulate_) = args
            tys = signature.args
            a_ptr = context.make_array(tys[0])(context, builder, a_arr).data
            b_ptr = context.make_array(tys[3])(context, builder, b_arr).data
            c_ptr = context.make_array(tys[6])(context, builder, c_arr).data
            a_off_, sa_r_, b_off_, sb_r_, c_off_, ldc_, r_len_ = (
                context.cast(builder, v, t, types.int64) for v, t in
                ((a_off_, tys[1]), (sa_r_, tys[2]), (b_off_, tys[4]), (sb_r_, tys[5]),
                 (c_off_, tys[7]), (ldc_, tys[8]), (r_len_, tys[9])))
            vec = ir.VectorType(ir.FloatType(), VW)
            fma = cgutils.get_or_insert_function(
                builder.module, ir.FunctionType(vec, [vec, vec, vec]), f"llvm.fma.v{VW}f32")
            zero = ir.Constant(vec, [0.0] * VW)
            undef = ir.Constant(vec, None)
            splat = ir.Constant(ir.VectorType(_I32, VW), [0] * VW)
            a0 = builder.gep(a_ptr, [a_off_])
            b0 = builder.gep(b_ptr, [b_off_])

            entry = builder.block
            loop = builder.append_basic_block("tile.loop")
            after = builder.append_basic_block("tile.after")
            builder.cbranch(builder.icmp_signed(">", r_len_, _const(0)), loop, after)

            # the loop: r, the two operand pointers and MR * NV accumulators as phis
            builder.position_at_end(loop)
            r = builder.phi(_I64)
            ap = builder.phi(a0.type)
            bp = builder.phi(b0.type)
            accs = [builder.phi(vec) for _ in range(MR * NV)]
            r.add_incoming(_const(0), entry)
            ap.add_incoming(a0, entry)
            bp.add_incoming(b0, entry)
            for acc in accs:
                acc.add_incoming(zero, entry)
            bv = [builder.load(builder.bitcast(builder.gep(bp, [_const(v * VW)]),
                                               vec.as_pointer()), align=4)
                  for v in range(NV)]
            sums = []
            for i in range(MR):
                s = builder.load(builder.gep(ap, [_const(i * sa_i)]), align=4)
                av = builder.shuffle_vector(builder.insert_element(undef, s, ir.Constant(_I32, 0)),
                                            undef, splat)
                sums += [builder.call(fma, [av, bv[v], accs[i * NV + v]]) for v in range(NV)]
            r_next = builder.add(r, _const(1))
            ap_next = builder.gep(ap, [sa_r_])
            bp_next = builder.gep(bp, [sb_r_])
            tail = builder.block
            r.add_incoming(r_next, tail)
            ap.add_incoming(ap_next, tail)
            bp.add_incoming(bp_next, tail)
            for acc, s in zip(accs, sums):
                acc.add_incoming(s, tail)
            builder.cbranch(builder.icmp_signed("<", r_next, r_len_), loop, after)

            # store (or add) the tile
            builder.position_at_end(after)
            final = []
            for s in sums:
                phi = builder.phi(vec)
                phi.add_incoming(zero, entry)
                phi.add_incoming(s, tail)
                final.append(phi)
            c0 = builder.gep(c_ptr, [c_off_])
            add = builder.icmp_unsigned("!=", accumulate_, ir.Constant(accumulate_.type, 0))
            with builder.if_else(add) as (then_add, then_store):
                for adding in (then_add, then_store):
                    with adding:
                        for i in range(MR):
                            row = builder.gep(c0, [builder.mul(ldc_, _const(i))])
                            for v in range(NV):
                                ptr = builder.bitcast(builder.gep(row, [_const(v * VW)]),
                                                      vec.as_pointer())
                                val = final[i * NV + v]
                                if adding is then_add:
                                    val = builder.fadd(builder.load(ptr, align=4), val)
                                builder.store(val, ptr, align=4)
            return context.get_dummy_value()

        return sig, codegen

    return tile

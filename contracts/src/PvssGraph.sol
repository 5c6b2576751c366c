// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

/// @title PvssGraph — the round's mask graph and included set (SPEC.md §6.3, §6.12),
/// pure functions run by PvssVerifier for PvssRound (keeps PvssRound under EIP-170).
/// @notice Clients 1..n; `k` = K of regular:K, 0 = the complete graph. `flags[i]` is
/// client i's flag byte (index 0 unused): 1 registered, 2 dealt, 4 excluded, 8 uploaded.
library PvssGraph {
    uint8 internal constant F_REGISTERED = 1;
    uint8 internal constant F_DEALT = 2;
    uint8 internal constant F_EXCLUDED = 4;
    uint8 internal constant F_UPLOADED = 8;
    bytes internal constant DST_GRAPH = "pvss-secagg/v1/graph";

    /// @dev Fisher–Yates over 1..n, j = keccak256(DST_GRAPH || seed || uint32 i) mod
    /// (i+1) (secagg.graph._permutation); perm[pos] = client id. O(n), one scratch buffer;
    /// the loop in assembly (about 80 gas a client instead of 1 000 from checked code).
    function permutation(bytes32 seed, uint32 n) internal pure returns (uint32[] memory perm) {
        perm = new uint32[](n);
        bytes memory buf = abi.encodePacked(DST_GRAPH, seed, uint32(0), bytes28(0)); // slack
        assembly ("memory-safe") {
            let base := add(perm, 0x20)
            for { let i := 0 } lt(i, n) { i := add(i, 1) } {
                mstore(add(base, shl(5, i)), add(i, 1))
            }
            let data := add(buf, 0x20)
            let tail := add(data, 52) // the uint32 i after DST_GRAPH (20) || seed (32)
            for { let i := sub(n, 1) } gt(i, 0) { i := sub(i, 1) } {
                mstore(tail, shl(224, i)) // overwrites the slack only
                let j := mod(keccak256(data, 56), add(i, 1))
                let pi := add(base, shl(5, i))
                let pj := add(base, shl(5, j))
                let vi := mload(pi)
                mstore(pi, mload(pj))
                mstore(pj, vi)
            }
        }
    }

    /// @dev the s-th neighbour position (s < K) of position q on the circulant graph
    /// (q +- 1 .. K/2, and q + n/2 for odd K; all distinct since K < n)
    function nbPos(uint256 q, uint256 s, uint256 n, uint256 k) internal pure returns (uint256) {
        uint256 half = k / 2;
        if (s < half) return (q + s + 1) % n;
        if (s < 2 * half) return (q + n - (s - half + 1)) % n;
        return (q + n / 2) % n;
    }

    /// @dev neighbours of `client` increasing (secagg.graph.compute_mask_graph)
    function neighbours(bytes32 seed, uint32 n, uint32 k, uint32 client) internal pure returns (uint32[] memory nb) {
        if (k == 0) {
            nb = new uint32[](n - 1);
            uint256 w;
            for (uint32 j = 1; j <= n; ++j) {
                if (j != client) nb[w++] = j;
            }
            return nb;
        }
        uint32[] memory perm = permutation(seed, n);
        uint256 pos;
        assembly ("memory-safe") {
            let base := add(perm, 0x20)
            for {} and(lt(pos, n), iszero(eq(mload(add(base, shl(5, pos))), client))) { pos := add(pos, 1) } {}
        }
        assert(pos < n); // the caller checks 1 <= client <= n
        nb = new uint32[](k);
        for (uint256 s; s < k; ++s) {
            nb[s] = perm[nbPos(pos, s, n, k)];
        }
        for (uint256 a = 1; a < k; ++a) { // insertion sort (K small)
            uint32 v = nb[a];
            uint256 b = a;
            while (b > 0 && nb[b - 1] > v) {
                nb[b] = nb[b - 1];
                b--;
            }
            nb[b] = v;
        }
    }

    /// @dev U = the kappa-core of the uploaded clients (peeling with a queue, O(n*K);
    /// complete graph O(n)) and the number of allowed dealings: |U| self dealings plus
    /// the accepted pair dealings (dealer dealt, not excluded; partner registered) with
    /// exactly one end in U. `inU` is a bitmap over client ids (word w, bit i & 255).
    function includedSet(bytes32 seed, uint32 n, uint32 k, uint32 kappa, bytes memory flags)
        internal
        pure
        returns (uint256[] memory inU, uint32 count, uint32 allowed)
    {
        inU = new uint256[]((uint256(n) >> 8) + 1);
        if (k == 0) {
            uint32 uploaded;
            for (uint256 i = 1; i <= n; ++i) {
                if (uint8(flags[i]) & F_UPLOADED != 0) uploaded++;
            }
            if (uploaded != 0 && uploaded - 1 >= kappa) {
                count = uploaded;
                for (uint256 i = 1; i <= n; ++i) {
                    if (uint8(flags[i]) & F_UPLOADED != 0) inU[i >> 8] |= uint256(1) << (i & 0xff);
                }
            }
            // boundary pairs (i, j > i) by suffix counts of registered clients in / out of U
            uint32 regIn;
            uint32 regOut;
            for (uint256 i = n; i >= 1; --i) {
                uint8 f = uint8(flags[i]);
                bool iIn = _has(inU, i);
                if (f & F_DEALT != 0 && f & F_EXCLUDED == 0) allowed += iIn ? regOut : regIn;
                if (f & F_REGISTERED != 0) {
                    if (iIn) regIn++;
                    else regOut++;
                }
            }
            return (inU, count, count + allowed);
        }
        uint32[] memory perm = permutation(seed, n);
        // x[q] (position q): id | flags << 32; st[q]: 0 = not in the core (never uploaded,
        // or peeled), else 1 + its alive neighbours; pre[x]: uploaded positions below x.
        // The loops in assembly; degrees by window sums of pre (O(n), whatever K), the
        // peeling O(K) per peeled position, the boundary pairs O(K) per position outside
        // U: O(n*K) at worst, a few dozen gas a (position, neighbour).
        uint256[] memory st = new uint256[](n);
        uint256[] memory queue = new uint256[](n);
        uint256[] memory pre = new uint256[](uint256(n) + 1);
        assembly ("memory-safe") {
            let X := add(perm, 0x20) // reused in place: the ids get their flags
            let S := add(st, 0x20)
            let Q := add(queue, 0x20)
            let PRE := add(pre, 0x20)
            let F := add(flags, 0x20)
            let half := shr(1, k)
            let odd := and(k, 1)
            let opp := shr(1, n)
            // circular sum of the uploaded indicator over positions lo .. lo + half - 1
            function window(pre_, lo, len, n_, total) -> w {
                let hi := add(lo, len)
                switch gt(hi, n_)
                case 0 { w := sub(mload(add(pre_, shl(5, hi))), mload(add(pre_, shl(5, lo)))) }
                default { w := add(sub(total, mload(add(pre_, shl(5, lo)))), mload(add(pre_, shl(5, sub(hi, n_))))) }
            }
            let total := 0
            for { let q := 0 } lt(q, n) { q := add(q, 1) } {
                let xq := add(X, shl(5, q))
                let id := mload(xq)
                let f := byte(0, mload(add(F, id)))
                mstore(xq, or(id, shl(32, f)))
                let up := iszero(iszero(and(f, F_UPLOADED)))
                mstore(add(S, shl(5, q)), up)
                total := add(total, up)
                mstore(add(PRE, shl(5, add(q, 1))), total)
            }
            // the queue holds pointers into st (Q .. qp); a position enters it once (below
            // kappa at the start, or when its degree crosses kappa -> kappa - 1)
            let qp := Q
            let end := add(S, shl(5, n))
            for { let q := 0 } lt(q, n) { q := add(q, 1) } {
                let sq := add(S, shl(5, q))
                if mload(sq) {
                    let lo := add(q, 1)
                    if eq(lo, n) { lo := 0 }
                    let d := window(PRE, lo, half, n, total)
                    lo := sub(add(q, n), half)
                    if iszero(lt(lo, n)) { lo := sub(lo, n) }
                    d := add(d, window(PRE, lo, half, n, total))
                    if odd { if mload(add(S, shl(5, addmod(q, opp, n)))) { d := add(d, 1) } }
                    mstore(sq, add(d, 1))
                    if lt(d, kappa) {
                        mstore(qp, sq)
                        qp := add(qp, 0x20)
                    }
                }
            }
            // peel: pop a position, mark it out, its alive neighbours lose one (the st words
            // in [from, to), pushing a neighbour whose degree crosses kappa -> kappa - 1)
            function lose(from, to, qp_, kv_) -> qp2 {
                qp2 := qp_
                for {} lt(from, to) { from := add(from, 0x20) } {
                    let v := mload(from)
                    if v {
                        mstore(from, sub(v, 1))
                        if eq(v, kv_) {
                            mstore(qp2, from)
                            qp2 := add(qp2, 0x20)
                        }
                    }
                }
            }
            let kv := add(kappa, 1) // st of a position with kappa alive neighbours
            let hb := shl(5, half) // bytes of st a side's neighbours span
            for {} gt(qp, Q) {} {
                qp := sub(qp, 0x20)
                let sq := mload(qp)
                mstore(sq, 0)
                let to := add(add(sq, 0x20), hb) // positions q+1 .. q+half
                switch gt(to, end)
                case 0 { qp := lose(add(sq, 0x20), to, qp, kv) }
                default {
                    qp := lose(add(sq, 0x20), end, qp, kv)
                    qp := lose(S, add(S, sub(to, end)), qp, kv)
                }
                let off := sub(sq, S) // positions q-half .. q-1
                switch lt(off, hb)
                case 0 { qp := lose(sub(sq, hb), sq, qp, kv) }
                default {
                    qp := lose(S, sq, qp, kv)
                    qp := lose(sub(end, sub(hb, off)), end, qp, kv)
                }
                if odd {
                    let p := add(sq, shl(5, opp))
                    if iszero(lt(p, end)) { p := sub(p, shl(5, n)) }
                    qp := lose(p, add(p, 0x20), qp, kv)
                }
            }
            let U := add(inU, 0x20)
            let c := 0
            for { let q := 0 } lt(q, n) { q := add(q, 1) } {
                if mload(add(S, shl(5, q))) {
                    let id := and(mload(add(X, shl(5, q))), 0xffffffff)
                    let w := add(U, shl(5, shr(8, id)))
                    mstore(w, or(mload(w), shl(and(id, 0xff), 1)))
                    c := add(c, 1)
                }
            }
            count := c
            // allowed pair dealings: the edges with exactly one end in U, seen from the end
            // outside it (r, id j) towards each neighbour in U (q, id i): the dealer is the
            // smaller id, it must have dealt and not be excluded, the partner registered
            let a := 0
            for { let r := 0 } and(lt(r, n), iszero(iszero(c))) { r := add(r, 1) } {
                if iszero(mload(add(S, shl(5, r)))) {
                    let xr := mload(add(X, shl(5, r)))
                    let j := and(xr, 0xffffffff)
                    let fr := shr(32, xr)
                    let regR := and(fr, F_REGISTERED)
                    let okR := eq(and(fr, or(F_DEALT, F_EXCLUDED)), F_DEALT)
                    if or(regR, okR) {
                        for { let s := 0 } lt(s, k) { s := add(s, 1) } {
                            let q
                            switch lt(s, half)
                            case 1 { q := add(r, add(s, 1)) }
                            default {
                                switch lt(s, shl(1, half))
                                case 1 { q := sub(add(r, n), add(sub(s, half), 1)) }
                                default { q := add(r, opp) }
                            }
                            if iszero(lt(q, n)) { q := sub(q, n) }
                            if mload(add(S, shl(5, q))) {
                                let xq := mload(add(X, shl(5, q)))
                                let fq := shr(32, xq)
                                switch lt(and(xq, 0xffffffff), j)
                                case 1 { a := add(a, and(eq(and(fq, or(F_DEALT, F_EXCLUDED)), F_DEALT), iszero(iszero(regR)))) }
                                default { a := add(a, and(okR, and(fq, F_REGISTERED))) }
                            }
                        }
                    }
                }
            }
            allowed := a
        }
        return (inU, count, count + allowed);
    }

    function _has(uint256[] memory bits, uint256 i) private pure returns (bool) {
        return (bits[i >> 8] >> (i & 0xff)) & 1 == 1;
    }
}

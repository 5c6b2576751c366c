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
    /// (i+1) (secagg.graph._permutation); perm[pos] = client id. O(n), one scratch buffer.
    function permutation(bytes32 seed, uint32 n) internal pure returns (uint32[] memory perm) {
        perm = new uint32[](n);
        for (uint32 i; i < n; ++i) {
            perm[i] = i + 1;
        }
        bytes memory buf = abi.encodePacked(DST_GRAPH, seed, uint32(0), bytes28(0)); // slack
        uint256 len = buf.length - 28;
        assembly ("memory-safe") {
            mstore(buf, len)
        }
        for (uint32 i = n - 1; i > 0; --i) {
            assembly ("memory-safe") {
                let p := add(add(buf, 0x20), sub(len, 4))
                mstore(p, or(and(mload(p), not(shl(224, 0xffffffff))), shl(224, i)))
            }
            uint256 j = uint256(keccak256(buf)) % (uint256(i) + 1);
            (perm[i], perm[j]) = (perm[j], perm[i]);
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
        while (perm[pos] != client) pos++;
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
        bool[] memory alive = new bool[](n);
        uint256[] memory deg = new uint256[](n);
        uint256[] memory queue = new uint256[](n);
        uint256 qlen;
        for (uint256 q; q < n; ++q) {
            alive[q] = uint8(flags[perm[q]]) & F_UPLOADED != 0;
        }
        for (uint256 q; q < n; ++q) {
            if (!alive[q]) continue;
            uint256 d;
            for (uint256 s; s < k; ++s) {
                if (alive[nbPos(q, s, n, k)]) d++;
            }
            deg[q] = d;
            if (d < kappa) queue[qlen++] = q;
        }
        while (qlen != 0) {
            uint256 q = queue[--qlen];
            alive[q] = false;
            for (uint256 s; s < k; ++s) {
                uint256 r = nbPos(q, s, n, k);
                if (alive[r]) {
                    uint256 d = deg[r];
                    deg[r] = d - 1;
                    if (d == kappa) queue[qlen++] = r; // crosses below kappa once
                }
            }
        }
        for (uint256 q; q < n; ++q) {
            if (alive[q]) {
                uint256 id = perm[q];
                inU[id >> 8] |= uint256(1) << (id & 0xff);
                count++;
            }
        }
        for (uint256 q; q < n; ++q) {
            uint32 i = perm[q];
            uint8 f = uint8(flags[i]);
            if (f & F_DEALT == 0 || f & F_EXCLUDED != 0) continue;
            for (uint256 s; s < k; ++s) {
                uint32 j = perm[nbPos(q, s, n, k)];
                if (j > i && uint8(flags[j]) & F_REGISTERED != 0 && alive[q] != _has(inU, j)) allowed++;
            }
        }
        return (inU, count, count + allowed);
    }

    function _has(uint256[] memory bits, uint256 i) private pure returns (bool) {
        return (bits[i >> 8] >> (i & 0xff)) & 1 == 1;
    }
}

// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

/// @title BN254 (alt_bn128) G1 arithmetic on the EVM precompiles — SPEC.md §2.
/// @notice A point is (x, y) in affine coordinates, each < P; the identity is (0, 0),
/// which is also how the precompiles return it. This is the 64-byte x || y encoding
/// of SPEC.md §2.3 read as two words.
/// Gas (EIP-1108): ecAdd (0x06) 150, ecMul (0x07) 6000, plus 100 for the warm call.
library BN254 {
    /// @dev field modulus p (SPEC.md §2.1 FIELD_MODULUS)
    uint256 internal constant P = 0x30644e72e131a029b85045b68181585d97816a916871ca8d3c208c16d87cfd47;
    /// @dev group order r (SPEC.md §2.1 ORDER)
    uint256 internal constant R = 0x30644e72e131a029b85045b68181585d2833e84879b9709143e1f593f0000001;
    /// @dev y^2 = x^3 + CURVE_B
    uint256 internal constant CURVE_B = 3;
    /// @dev generator G = (1, 2)
    uint256 internal constant G_X = 1;
    uint256 internal constant G_Y = 2;
    /// @dev second generator H = compute_h_generator("pvss-secagg/v1/generator-h") (SPEC.md §2.2),
    /// the value of tests/vectors/hash_to_g1/h.json (the tests check both agree).
    uint256 internal constant H_X = 0x1b4dbcfc4b1156f78fd7608b0b07f427950b8200e167265ae5da9135f5373546;
    uint256 internal constant H_Y = 0x0012886aca1e7d58ef7e032035d431289511a4cb77d8ea7ac1ce2a9552505000;
    /// @dev seed-reveal generator H_SEED = compute_h_generator("pvss-secagg/v1/generator-seed")
    /// (SPEC.md §6.10, pvss.keys.H_SEED; the tests check both agree)
    uint256 internal constant H_SEED_X = 0x2a116eb3e4873b7d86dfc1326ec94ddb388b9f20a272ac24f750ce4f745b8eb4;
    uint256 internal constant H_SEED_Y = 0x0ab3cfaac8d9ce5c5995861afc3eac431dfb3996ef7fc0a7e03b7a28f7b48353;

    /// @notice the ecAdd precompile (0x06) failed (invalid input point or out of gas)
    error EcAddFailed();
    /// @notice the ecMul precompile (0x07) failed (invalid input point or out of gas)
    error EcMulFailed();

    /// @notice Whether (x, y) is a valid encoding (SPEC.md §2.3): the identity (0, 0), or
    /// both coordinates < P and y^2 = x^3 + 3. G1 has cofactor 1, so on-curve means in G1.
    function isValidPoint(uint256 x, uint256 y) internal pure returns (bool) {
        if (x | y == 0) return true;
        if (x >= P || y >= P) return false;
        return mulmod(y, y, P) == addmod(mulmod(mulmod(x, x, P), x, P), CURVE_B, P);
    }

    /// @notice -(x, y); the identity stays (0, 0). (No point of odd order r has y = 0.)
    function neg(uint256 x, uint256 y) internal pure returns (uint256, uint256) {
        return (x, y == 0 ? 0 : P - y);
    }

    /// @notice A + B.
    function add(uint256 ax, uint256 ay, uint256 bx, uint256 by) internal view returns (uint256 x, uint256 y) {
        bool ok;
        assembly ("memory-safe") {
            let m := mload(0x40)
            mstore(m, ax)
            mstore(add(m, 0x20), ay)
            mstore(add(m, 0x40), bx)
            mstore(add(m, 0x60), by)
            // two statements: Yul evaluates arguments right to left
            ok := staticcall(gas(), 0x06, m, 0x80, m, 0x40)
            ok := and(ok, eq(returndatasize(), 0x40))
            x := mload(m)
            y := mload(add(m, 0x20))
        }
        if (!ok) revert EcAddFailed();
    }

    /// @notice s * A (the precompile reduces s mod r; s may be any uint256).
    function mul(uint256 ax, uint256 ay, uint256 s) internal view returns (uint256 x, uint256 y) {
        bool ok;
        assembly ("memory-safe") {
            let m := mload(0x40)
            mstore(m, ax)
            mstore(add(m, 0x20), ay)
            mstore(add(m, 0x40), s)
            ok := staticcall(gas(), 0x07, m, 0x60, m, 0x40)
            ok := and(ok, eq(returndatasize(), 0x40))
            x := mload(m)
            y := mload(add(m, 0x20))
        }
        if (!ok) revert EcMulFailed();
    }

    /// @notice a * A + b * B with two ecMul and one ecAdd, the products written straight
    /// into the ecAdd input (scratch memory past the free pointer, nothing allocated).
    function mulAdd(uint256 ax, uint256 ay, uint256 a, uint256 bx, uint256 by, uint256 b)
        internal
        view
        returns (uint256 x, uint256 y)
    {
        bool mulOk;
        bool addOk;
        assembly ("memory-safe") {
            let m := mload(0x40)
            // [m, m+0x40) <- a*A
            mstore(m, ax)
            mstore(add(m, 0x20), ay)
            mstore(add(m, 0x40), a)
            mulOk := staticcall(gas(), 0x07, m, 0x60, m, 0x40)
            mulOk := and(mulOk, eq(returndatasize(), 0x40))
            // [m+0x40, m+0x80) <- b*B
            let n := add(m, 0x40)
            mstore(n, bx)
            mstore(add(n, 0x20), by)
            mstore(add(n, 0x40), b)
            mulOk := and(mulOk, staticcall(gas(), 0x07, n, 0x60, n, 0x40))
            mulOk := and(mulOk, eq(returndatasize(), 0x40))
            addOk := staticcall(gas(), 0x06, m, 0x80, m, 0x40)
            addOk := and(addOk, eq(returndatasize(), 0x40))
            x := mload(m)
            y := mload(add(m, 0x20))
        }
        if (!mulOk) revert EcMulFailed();
        if (!addOk) revert EcAddFailed();
    }

    /// @notice uint256(keccak256(data)) mod r — the Fiat–Shamir challenge of a
    /// transcript (SPEC.md §3.1).
    function hashToScalar(bytes memory data) internal pure returns (uint256) {
        return uint256(keccak256(data)) % R;
    }
}

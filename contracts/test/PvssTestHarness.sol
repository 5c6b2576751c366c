// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

import {BN254} from "../src/BN254.sol";
import {Pvss} from "../src/Pvss.sol";

/// @title PvssTestHarness — exposes the library internals to the tests
/// (tests/test_contracts_vectors.py). Not part of the deployed protocol.
contract PvssTestHarness {
    /// @notice BN254.add (ecAdd precompile through the library)
    function ecAdd(uint256 ax, uint256 ay, uint256 bx, uint256 by) external view returns (uint256, uint256) {
        return BN254.add(ax, ay, bx, by);
    }

    /// @notice BN254.mul (ecMul precompile through the library)
    function ecMul(uint256 ax, uint256 ay, uint256 s) external view returns (uint256, uint256) {
        return BN254.mul(ax, ay, s);
    }

    /// @notice BN254.mulAdd: a*A + b*B
    function ecMulAdd(uint256 ax, uint256 ay, uint256 a, uint256 bx, uint256 by, uint256 b)
        external
        view
        returns (uint256, uint256)
    {
        return BN254.mulAdd(ax, ay, a, bx, by, b);
    }

    /// @notice BN254.neg
    function ecNeg(uint256 x, uint256 y) external pure returns (uint256, uint256) {
        return BN254.neg(x, y);
    }

    /// @notice BN254.isValidPoint
    function isValidPoint(uint256 x, uint256 y) external pure returns (bool) {
        return BN254.isValidPoint(x, y);
    }

    /// @notice Whether precompile `target` succeeds on `input` with exactly `gasLimit` gas
    /// (the tests probe the EIP-1108 prices: ecAdd 150, ecMul 6000).
    function callsWithGas(address target, uint256 gasLimit, bytes calldata input) external view returns (bool ok) {
        bytes memory data = input;
        assembly ("memory-safe") {
            ok := staticcall(gasLimit, target, add(data, 0x20), mload(data), 0, 0)
        }
    }

    /// @notice Gas that `target` spends on `data` (a staticcall, measured with gasleft;
    /// includes the ~100 of the warm call itself): the execution gas of a verify* call,
    /// free of the transaction's calldata pricing (EIP-2028 / EIP-7623 floor).
    function gasOf(address target, bytes calldata data) external view returns (uint256 used, bool ok) {
        require(target.code.length != 0, "no code"); // also warms target (EIP-2929)
        bytes memory input = data;
        uint256 before = gasleft();
        (ok,) = target.staticcall(input);
        used = before - gasleft();
    }

    /// @notice The try-and-increment of SPEC.md §2.2 with the modexp precompile: the
    /// first ctr with x = keccak256(tag || uint32 ctr) mod p and x^3 + 3 a square.
    function deriveH(bytes calldata tag) external view returns (uint256 x, uint256 y, uint32 counter) {
        uint256 p = BN254.P;
        for (uint32 ctr;; ++ctr) {
            x = uint256(keccak256(abi.encodePacked(tag, ctr))) % p;
            uint256 rhs = addmod(mulmod(mulmod(x, x, p), x, p), BN254.CURVE_B, p);
            y = _modexp(rhs, (p + 1) / 4, p);
            if (mulmod(y, y, p) == rhs) {
                if (y > (p - 1) / 2) y = p - y;
                return (x, y, ctr);
            }
        }
    }

    function _modexp(uint256 b, uint256 e, uint256 m) private view returns (uint256 r) {
        bool ok;
        assembly ("memory-safe") {
            let f := mload(0x40)
            mstore(f, 0x20)
            mstore(add(f, 0x20), 0x20)
            mstore(add(f, 0x40), 0x20)
            mstore(add(f, 0x60), b)
            mstore(add(f, 0x80), e)
            mstore(add(f, 0xa0), m)
            ok := staticcall(gas(), 0x05, f, 0xc0, f, 0x20)
            r := mload(f)
        }
        require(ok, "modexp failed");
    }

    /// @notice Pvss.dealingTranscript: the exact bytes the dealing challenge hashes
    function dealingTranscript(
        bytes calldata context,
        bytes calldata committeePks,
        bytes calldata recipientPk,
        bytes calldata dealing
    ) external pure returns (bytes memory) {
        return Pvss.dealingTranscript(context, committeePks, recipientPk, dealing);
    }

    /// @notice Pvss.rsWeights
    function rsWeights(uint256 e, uint256 count) external pure returns (uint256[] memory) {
        return Pvss.rsWeights(e, count);
    }

    /// @notice Pvss.dualCodeword
    function dualCodeword(uint256 n, uint256 t, uint256[] calldata mu) external pure returns (uint256[] memory) {
        return Pvss.dualCodeword(n, t, mu);
    }

    /// @notice BN254.hashToScalar
    function hashToScalar(bytes calldata data) external pure returns (uint256) {
        return BN254.hashToScalar(data);
    }
}

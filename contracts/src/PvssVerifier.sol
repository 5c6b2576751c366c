// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

import {BN254} from "./BN254.sol";
import {Pvss, Field, InvalidLength} from "./Pvss.sol";
import {PvssGraph} from "./PvssGraph.sol";

/// @title PvssVerifier — the on-chain checks of pvss-secagg (SPEC.md §3–§4) as a
/// stateless contract.
/// @notice Every check comes twice: `verify*` reverts with the custom error that names
/// what failed (see Pvss.sol; use it in a transaction or to learn why), `isValid*`
/// returns false instead. Encodings: a point is 64 bytes x || y (identity = 64 zero
/// bytes), a scalar 32 bytes big-endian, `context` the 69 bytes of SPEC.md §3.2,
/// `committeePks` the m committee keys packed (m x 64 bytes, member 1 first),
/// `recipientPk` 64 bytes or empty (dealing without recipient), `dealing` the bytes of
/// SPEC.md §4.1, `share` the 130 bytes of SPEC.md §4.5, `proof` e || z (64 bytes).
contract PvssVerifier {
    /// @notice Reverts unless `dealing` is a valid dealing with threshold `threshold`
    /// under `context` for these keys (SPEC.md §4.3); returns its challenge e.
    function verifyDealing(
        bytes memory context,
        uint16 threshold,
        bytes memory committeePks,
        bytes memory recipientPk,
        bytes memory dealing
    ) public view returns (uint256 challenge) {
        return Pvss.verifyDealing(context, threshold, committeePks, recipientPk, dealing);
    }

    /// @notice verifyDealing as a bool.
    function isValidDealing(
        bytes calldata context,
        uint16 threshold,
        bytes calldata committeePks,
        bytes calldata recipientPk,
        bytes calldata dealing
    ) external view returns (bool) {
        try this.verifyDealing(context, threshold, committeePks, recipientPk, dealing) returns (uint256) {
            return true;
        } catch (bytes memory reason) {
            return _rejected(reason);
        }
    }

    /// @notice Reverts unless `share` is member k's valid decryption of the encrypted
    /// share `sHat` (= s_hat_k of the dealing, for the k inside `share`) under key `pk`.
    function verifyDecryptedShare(
        bytes memory context,
        bytes memory pk,
        bytes memory sHat,
        bytes memory share
    ) public view {
        Pvss.verifyDecryptedShare(context, pk, sHat, share);
    }

    /// @notice verifyDecryptedShare as a bool.
    function isValidDecryptedShare(
        bytes calldata context,
        bytes calldata pk,
        bytes calldata sHat,
        bytes calldata share
    ) external view returns (bool) {
        try this.verifyDecryptedShare(context, pk, sHat, share) {
            return true;
        } catch (bytes memory reason) {
            return _rejected(reason);
        }
    }

    /// @notice verifyDecryptedShare with s_hat_k cut from the (already verified) dealing
    /// at the share's index k (pvss.scrape.verify_decrypted_share).
    function verifyDecryptedShareInDealing(
        bytes memory context,
        bytes memory dealing,
        bytes memory pk,
        bytes memory share
    ) public view {
        uint256 index = Pvss.shareIndex(share);
        Pvss.verifyDecryptedShare(context, pk, Pvss.shareEncryption(dealing, index), share);
    }

    /// @notice verifyDecryptedShareInDealing as a bool.
    function isValidDecryptedShareInDealing(
        bytes calldata context,
        bytes calldata dealing,
        bytes calldata pk,
        bytes calldata share
    ) external view returns (bool) {
        try this.verifyDecryptedShareInDealing(context, dealing, pk, share) {
            return true;
        } catch (bytes memory reason) {
            return _rejected(reason);
        }
    }

    /// @notice Reverts unless `post` (uint16 k || uint16 N || N x S_i || A1 || A2 || z) is
    /// member k's valid share post (SPEC.md §4.5): one aggregated DLEQ for the decryptions
    /// S_i of `sHats` (N x 64, in post order) under `contexts` (N x 69) and key `pk`.
    /// Returns k and N.
    function verifySharePost(bytes memory pk, bytes memory contexts, bytes memory sHats, bytes memory post)
        public
        view
        returns (uint256 index, uint256 count)
    {
        return Pvss.verifySharePost(pk, contexts, sHats, post);
    }

    /// @notice verifySharePost as a bool.
    function isValidSharePost(
        bytes calldata pk,
        bytes calldata contexts,
        bytes calldata sHats,
        bytes calldata post
    ) external view returns (bool) {
        try this.verifySharePost(pk, contexts, sHats, post) returns (uint256, uint256) {
            return true;
        } catch (bytes memory reason) {
            return _rejected(reason);
        }
    }

    /// @notice Reverts unless `proof` is a valid proof of possession of `pk` for
    /// `party` in round `round` on (chainId, board) (SPEC.md §3.4).
    function verifyPop(uint256 chainId, address board, uint64 round, uint32 party, bytes memory pk, bytes memory proof)
        public
        view
    {
        Pvss.verifyPop(chainId, board, round, party, pk, proof);
    }

    /// @notice verifyPop as a bool.
    function isValidPop(
        uint256 chainId,
        address board,
        uint64 round,
        uint32 party,
        bytes calldata pk,
        bytes calldata proof
    ) external view returns (bool) {
        try this.verifyPop(chainId, board, round, party, pk, proof) {
            return true;
        } catch (bytes memory reason) {
            return _rejected(reason);
        }
    }

    /// @notice The challenge e = keccak256(dealing transcript) mod r (SPEC.md §4.2),
    /// without verifying anything but the lengths.
    function dealingChallenge(
        bytes calldata context,
        bytes calldata committeePks,
        bytes calldata recipientPk,
        bytes calldata dealing
    ) external pure returns (uint256) {
        return BN254.hashToScalar(Pvss.dealingTranscript(context, committeePks, recipientPk, dealing));
    }

    /// @notice The 69-byte context (SPEC.md §3.2).
    function encodeContext(
        uint256 chainId,
        address board,
        uint64 round,
        uint32 dealer,
        uint8 purpose,
        uint32 partner
    ) external pure returns (bytes memory) {
        return abi.encodePacked(chainId, board, round, dealer, purpose, partner);
    }

    /// @notice Reverts unless (`gamma`, `proof`) is member `member`'s seed reveal for its
    /// key `pk` in round `round` on (chainId, board) (SPEC.md §6.10).
    function verifySeedReveal(
        uint256 chainId,
        address board,
        uint64 round,
        uint32 member,
        bytes calldata pk,
        bytes calldata gamma,
        bytes calldata proof
    ) external view {
        if (pk.length != 64) revert InvalidLength(Field.PublicKey, pk.length);
        Pvss.verifySeedReveal(
            chainId, board, round, member, uint256(bytes32(pk[0:32])), uint256(bytes32(pk[32:64])), gamma, proof
        );
    }

    /// @notice The seed-reveal generator H_SEED (SPEC.md §6.10).
    function generatorHSeed() external pure returns (uint256 x, uint256 y) {
        return (BN254.H_SEED_X, BN254.H_SEED_Y);
    }

    /// @notice The second generator H (SPEC.md §2.2).
    function generatorH() external pure returns (uint256 x, uint256 y) {
        return (BN254.H_X, BN254.H_Y);
    }

    /// @notice the neighbours of `client` on the round's mask graph, increasing (k = K
    /// of regular:K, 0 = complete; SPEC.md §6.3)
    function graphNeighbours(bytes32 seed, uint32 n, uint32 k, uint32 client) external pure returns (uint32[] memory) {
        return PvssGraph.neighbours(seed, n, k, client);
    }

    /// @notice the included set U as a bitmap over client ids, |U| and the number of
    /// allowed dealings (SPEC.md §6.12, §6.5) from the clients' flag bytes (PvssGraph)
    function includedSet(bytes32 seed, uint32 n, uint32 k, uint32 kappa, bytes calldata flags)
        external
        pure
        returns (uint256[] memory inU, uint32 count, uint32 allowed)
    {
        return PvssGraph.includedSet(seed, n, k, kappa, flags);
    }

    /// @dev false for a rejection; re-raises what is not one: no reason (out of gas in
    /// the inner call) and failing precompiles (out of gas there: our inputs are
    /// checked before any precompile sees them), so a short gas limit never reads as
    /// "invalid".
    function _rejected(bytes memory reason) private pure returns (bool) {
        bytes4 sel = reason.length >= 4 ? bytes4(reason) : bytes4(0);
        if (reason.length < 4 || sel == BN254.EcMulFailed.selector || sel == BN254.EcAddFailed.selector) {
            assembly ("memory-safe") {
                revert(add(reason, 0x20), mload(reason))
            }
        }
        return false;
    }
}

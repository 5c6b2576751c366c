// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

import {BN254} from "./BN254.sol";

/// @notice The input field an encoding error is about (SPEC.md §1.4: errors name the
/// field and its index). Dealing fields are indexed by position in the dealing
/// (0 .. N-1), committee keys by position in the key list.
enum Field {
    Context, // the 69-byte context (length)
    Purpose, // context byte 64, must be 0, 1 or 2
    Dealing, // the dealing as a whole (length)
    HasRecipient, // dealing byte 2, must be 0 or 1
    NPoints, // dealing N, must be 1 .. MAX_POINTS
    Threshold, // dealing t, must satisfy 1 <= t and t + 1 <= m
    CommitteeKeys, // the packed committee key list (length)
    CommitteeKey, // one committee key
    RecipientKey, // the recipient key (0 or 64 bytes)
    V, // dealing v_k
    SHat, // dealing s_hat_k, or the encrypted share given to verifyDecryptedShare
    A1, // dealing a1_k, or a decrypted share's A1
    A2, // dealing a2_k, or a decrypted share's A2
    Z, // dealing z_k
    Share, // a decrypted share as a whole (length, 226)
    ShareIndex, // decrypted share index k, must be >= 1
    SharePoint, // decrypted share S_k
    PublicKey, // a member's key (decrypted share, proof of possession)
    Proof, // a 64-byte (e, z) proof as a whole (length)
    Challenge, // e of a compact proof (proof of possession), must be < r
    Response, // z of a proof, must be < r
    Gamma, // a member's seed reveal Gamma (SPEC.md §6.10)
    SharePost // a share post as a whole (length, share count N >= 1; SPEC.md §4.5)
}

/// @notice bytes that do not have the length the layout requires
error InvalidLength(Field field, uint256 length);
/// @notice a value that does not decode: coordinate >= p, point off the curve, scalar
/// >= r, or a header value out of range
error InvalidEncoding(Field field, uint256 index);
/// @notice a public key that is the identity
error IdentityKey(Field field, uint256 index);
/// @notice the dealing's threshold is not the one asked for
error ThresholdMismatch(uint256 expected, uint256 actual);
/// @notice the number of committee keys is not the dealing's committee size m
error KeyCountMismatch(uint256 keys, uint256 committeePoints);
/// @notice has_recipient of the dealing disagrees with whether a recipient key is given
error RecipientMismatch(bool dealingHasRecipient);
/// @notice the dealing's Fiat–Shamir challenge is 0 (invalid by rule, SPEC.md §4.8)
error ZeroChallenge();
/// @notice the DLEQ proof at evaluation point `point` fails: z*G + e*v != a1
/// (keySide false) or z*pk + e*s_hat != a2 (keySide true)
error DleqFailed(uint256 point, bool keySide);
/// @notice the commitments v are not a degree-t polynomial (Reed–Solomon check)
error RsCheckFailed();
/// @notice the dealing has no evaluation point `index` for a decrypted share
error NoSuchPoint(uint256 index);
/// @notice the DLEQ proof of member `index`'s decrypted share does not verify
error ShareProofFailed(uint256 index);
/// @notice the aggregated DLEQ of member `member`'s share post does not verify: some
/// S_i of the post is not its decryption, or the proof is bad (SPEC.md §4.5)
error SharePostFailed(uint256 member);
/// @notice the proof of possession of `party` does not verify
error PopFailed(uint256 party);
/// @notice the DLEQ proof of member `member`'s seed reveal does not verify (SPEC.md §6.10)
error SeedRevealFailed(uint256 member);

/// @title SCRAPE PVSS verification on BN254 — SPEC.md §3–§4, bit-for-bit the Python
/// reference (pvss.scrape.verify_dealing, verify_decrypted_share, pvss.keys.verify_possession).
/// @notice Every function reverts with one of the errors above on a bad input; points
/// are 64-byte x || y strings, scalars 32-byte big-endian, all uints big-endian.
library Pvss {
    bytes internal constant DST_DEALING = "pvss-secagg/v1/dealing";
    bytes internal constant DST_RS_DUAL = "pvss-secagg/v1/rs-dual";
    bytes internal constant DST_DECRYPTED_SHARE = "pvss-secagg/v1/decrypted-share";
    bytes internal constant DST_POP = "pvss-secagg/v1/proof-of-possession";
    bytes internal constant DST_SEED_REVEAL = "pvss-secagg/v1/seed-reveal";
    uint256 internal constant SEED_PROOF_BYTES = 160;
    /// @dev the tags left-aligned in a word, for transcripts assembled in memory (the
    /// 34-byte DST_POP does not fit and goes through abi.encodePacked)
    bytes32 private constant DST_DEALING_WORD = "pvss-secagg/v1/dealing"; // 22 bytes
    bytes32 private constant DST_RS_DUAL_WORD = "pvss-secagg/v1/rs-dual"; // 22 bytes
    bytes32 private constant DST_DECRYPTED_SHARE_WORD = "pvss-secagg/v1/decrypted-share"; // 30 bytes
    bytes32 private constant DST_SHARE_POST_WORD = "pvss-secagg/v1/share-post"; // 25 bytes
    bytes32 private constant DST_SHARE_POST_PROOF_WORD = "pvss-secagg/v1/share-post-proof"; // 31 bytes
    /// @dev uint16 k || uint16 N, then N x S_i (64) and A1 || A2 || z (160)
    uint256 internal constant SHARE_POST_HEADER_BYTES = 4;
    uint256 internal constant DLEQ_PROOF_BYTES = 160;
    /// @dev seed transcript: DST (25) || uint16 k || pk || uint16 N = 93 bytes, then per
    /// share context (69) || s_hat_i || S_i = 197 bytes
    uint256 private constant SP_HEADER = 93;
    uint256 private constant SP_RECORD = 197;

    uint256 internal constant CONTEXT_BYTES = 69;
    uint256 internal constant PURPOSE_OTHER = 2;
    uint256 internal constant MAX_POINTS = 1024;
    uint256 internal constant DEALING_HEADER_BYTES = 5;
    /// @dev v || s_hat || a1 || a2 || z
    uint256 internal constant RECORD_BYTES = 288;
    uint256 internal constant DECRYPTED_SHARE_BYTES = 226;
    uint256 internal constant PROOF_BYTES = 64;

    /// @dev transcript layout: DST (22) || context (69) || dealing header (5) = 96 bytes,
    /// then per point pk || v || s_hat || a1 || a2 (320 bytes)
    uint256 private constant TR_HEADER = 96;
    uint256 private constant TR_RECORD = 320;

    // ---------------------------------------------------------------- decoding

    /// @notice Checks a 69-byte context (SPEC.md §3.2): length and purpose.
    function checkContext(bytes memory context) internal pure {
        if (context.length != CONTEXT_BYTES) revert InvalidLength(Field.Context, context.length);
        if (uint8(context[64]) > PURPOSE_OTHER) revert InvalidEncoding(Field.Purpose, 0);
    }

    /// @notice Decodes and checks the dealing header (SPEC.md §4.1): exact length
    /// 5 + 288*N, has_recipient in {0, 1}, 1 <= N <= MAX_POINTS, 1 <= t, t + 1 <= m.
    function dealingHeader(bytes memory dealing) internal pure returns (uint256 t, bool hasRecipient, uint256 n) {
        uint256 len = dealing.length;
        if (len < DEALING_HEADER_BYTES) revert InvalidLength(Field.Dealing, len);
        uint256 word;
        assembly ("memory-safe") {
            word := mload(add(dealing, 0x20))
        }
        t = word >> 240;
        uint256 flag = (word >> 232) & 0xff;
        n = (word >> 216) & 0xffff;
        if (flag > 1) revert InvalidEncoding(Field.HasRecipient, 0);
        if (len != DEALING_HEADER_BYTES + n * RECORD_BYTES) revert InvalidLength(Field.Dealing, len);
        if (n == 0 || n > MAX_POINTS) revert InvalidEncoding(Field.NPoints, 0);
        hasRecipient = flag == 1;
        if (t == 0 || n - flag < t + 1) revert InvalidEncoding(Field.Threshold, 0);
    }

    /// @dev the word at byte `off` of `b`'s data
    function _word(bytes memory b, uint256 off) private pure returns (uint256 w) {
        assembly ("memory-safe") {
            w := mload(add(add(b, 0x20), off))
        }
    }

    /// @dev the point at byte `off` of `b`'s data, unchecked
    function _point(bytes memory b, uint256 off) private pure returns (uint256 x, uint256 y) {
        assembly ("memory-safe") {
            let p := add(add(b, 0x20), off)
            x := mload(p)
            y := mload(add(p, 0x20))
        }
    }

    /// @dev the point at byte `off` of `b`'s data, reverting InvalidEncoding(field, index)
    /// unless it is a valid encoding
    function _checkedPoint(bytes memory b, uint256 off, Field field, uint256 index)
        private
        pure
        returns (uint256 x, uint256 y)
    {
        (x, y) = _point(b, off);
        if (!BN254.isValidPoint(x, y)) revert InvalidEncoding(field, index);
    }

    /// @dev a public key given on its own: 64 bytes, valid, not the identity
    function _key(bytes memory pk, Field field, uint256 index) private pure returns (uint256 x, uint256 y) {
        if (pk.length != 64) revert InvalidLength(field, pk.length);
        (x, y) = _checkedPoint(pk, 0, field, index);
        if (x | y == 0) revert IdentityKey(field, index);
    }

    // ---------------------------------------------------------------- dealings

    /// @notice The dealing transcript of SPEC.md §4.2 (abi.encodePacked of DST_DEALING,
    /// context, uint16 t, uint8 has_recipient, uint16 N and N x (pk_k, v_k, s_hat_k,
    /// a1_k, a2_k)). Checks only the header and the key count, not the points.
    function dealingTranscript(
        bytes memory context,
        bytes memory committeePks,
        bytes memory recipientPk,
        bytes memory dealing
    ) internal pure returns (bytes memory tr) {
        checkContext(context);
        (, bool hasRecipient, uint256 n) = dealingHeader(dealing);
        _checkKeyCounts(committeePks, recipientPk, hasRecipient, n);
        tr = _transcript(context, committeePks, recipientPk, dealing, hasRecipient, n);
    }

    function _checkKeyCounts(bytes memory committeePks, bytes memory recipientPk, bool hasRecipient, uint256 n)
        private
        pure
    {
        if (committeePks.length % 64 != 0) revert InvalidLength(Field.CommitteeKeys, committeePks.length);
        if (recipientPk.length != 0 && recipientPk.length != 64) {
            revert InvalidLength(Field.RecipientKey, recipientPk.length);
        }
        if ((recipientPk.length == 64) != hasRecipient) revert RecipientMismatch(hasRecipient);
        uint256 m = hasRecipient ? n - 1 : n;
        if (committeePks.length / 64 != m) revert KeyCountMismatch(committeePks.length / 64, m);
    }

    /// @dev assembles the transcript with mcopy; lengths were checked by the caller
    function _transcript(
        bytes memory context,
        bytes memory committeePks,
        bytes memory recipientPk,
        bytes memory dealing,
        bool hasRecipient,
        uint256 n
    ) private pure returns (bytes memory tr) {
        bytes32 dst = DST_DEALING_WORD;
        assembly ("memory-safe") {
            tr := mload(0x40)
            let len := add(96, mul(n, 320))
            mstore(tr, len)
            mstore(0x40, add(add(tr, 0x20), len)) // len is a multiple of 32
            let out := add(tr, 0x20)
            mstore(out, dst) // bytes 22..31 are overwritten by the context
            mcopy(add(out, 22), add(context, 0x20), 69)
            mcopy(add(out, 91), add(dealing, 0x20), 5)
            out := add(out, 96)
            let src := add(dealing, 0x25) // first record
            let key := add(committeePks, 0x20)
            let i := 0
            if hasRecipient {
                mcopy(out, add(recipientPk, 0x20), 64)
                mcopy(add(out, 64), src, 256)
                out := add(out, 320)
                src := add(src, 288)
                i := 1
            }
            for {} lt(i, n) { i := add(i, 1) } {
                mcopy(out, key, 64)
                mcopy(add(out, 64), src, 256)
                out := add(out, 320)
                src := add(src, 288)
                key := add(key, 64)
            }
        }
    }

    /// @dev checks every key, point and scalar of the dealing (SPEC.md §2.3, §4.1),
    /// reading the points from the transcript
    function _checkEncodings(bytes memory tr, bytes memory dealing, bool hasRecipient, uint256 n) private pure {
        uint256 first = hasRecipient ? 1 : 0; // position of committee key 0
        for (uint256 i; i < n; ++i) {
            uint256 rec = TR_HEADER + i * TR_RECORD;
            (uint256 kx, uint256 ky) = _point(tr, rec);
            (Field kf, uint256 ki) = i < first ? (Field.RecipientKey, 0) : (Field.CommitteeKey, i - first);
            if (!BN254.isValidPoint(kx, ky)) revert InvalidEncoding(kf, ki);
            if (kx | ky == 0) revert IdentityKey(kf, ki);
            _checkedPoint(tr, rec + 64, Field.V, i);
            _checkedPoint(tr, rec + 128, Field.SHat, i);
            _checkedPoint(tr, rec + 192, Field.A1, i);
            _checkedPoint(tr, rec + 256, Field.A2, i);
            if (_word(dealing, DEALING_HEADER_BYTES + i * RECORD_BYTES + 256) >= BN254.R) {
                revert InvalidEncoding(Field.Z, i);
            }
        }
    }

    /// @notice Verifies a dealing (SPEC.md §4.3) for `threshold`, the committee keys
    /// (m x 64 bytes, packed, in index order 1..m) and the recipient key (64 bytes, or
    /// empty for a dealing without recipient). Returns the challenge e.
    /// 1. decode: header, lengths, every point and z (InvalidLength / InvalidEncoding),
    ///    keys not the identity (IdentityKey), t == threshold, key counts;
    /// 2. e = keccak256(transcript) mod r, e != 0 (ZeroChallenge);
    /// 3. for every point k: z_k*G + e*v_k == a1_k and z_k*pk_k + e*s_hat_k == a2_k (DleqFailed);
    /// 4. if N >= t+2: sum_k c_k*v_k == 0 for c = sum_j mu_j*Delta_j (RsCheckFailed).
    function verifyDealing(
        bytes memory context,
        uint256 threshold,
        bytes memory committeePks,
        bytes memory recipientPk,
        bytes memory dealing
    ) internal view returns (uint256 e) {
        checkContext(context);
        (uint256 t, bool hasRecipient, uint256 n) = dealingHeader(dealing);
        if (t != threshold) revert ThresholdMismatch(threshold, t);
        _checkKeyCounts(committeePks, recipientPk, hasRecipient, n);
        bytes memory tr = _transcript(context, committeePks, recipientPk, dealing, hasRecipient, n);
        _checkEncodings(tr, dealing, hasRecipient, n);
        e = BN254.hashToScalar(tr);
        if (e == 0) revert ZeroChallenge();
        uint256 first = hasRecipient ? 0 : 1; // evaluation point of position 0
        for (uint256 i; i < n; ++i) {
            _checkDleq(tr, dealing, i, e, i + first);
        }
        if (n >= t + 2) _checkRs(tr, e, n, t);
    }

    /// @dev the two DLEQ equations at position i (point = evaluation point, for the error)
    function _checkDleq(bytes memory tr, bytes memory dealing, uint256 i, uint256 e, uint256 point) private view {
        uint256 rec = TR_HEADER + i * TR_RECORD;
        uint256 z = _word(dealing, DEALING_HEADER_BYTES + i * RECORD_BYTES + 256);
        {
            (uint256 vx, uint256 vy) = _point(tr, rec + 64);
            (uint256 x, uint256 y) = BN254.mulAdd(BN254.G_X, BN254.G_Y, z, vx, vy, e);
            (uint256 ax, uint256 ay) = _point(tr, rec + 192);
            if (x != ax || y != ay) revert DleqFailed(point, false);
        }
        {
            (uint256 kx, uint256 ky) = _point(tr, rec);
            (uint256 sx, uint256 sy) = _point(tr, rec + 128);
            (uint256 x, uint256 y) = BN254.mulAdd(kx, ky, z, sx, sy, e);
            (uint256 ax, uint256 ay) = _point(tr, rec + 256);
            if (x != ax || y != ay) revert DleqFailed(point, true);
        }
    }

    /// @notice mu_j = keccak256(DST_RS_DUAL || uint256 e || uint16 j) mod r for
    /// j = 0 .. count-1 (SPEC.md §4.3 step 4; pvss.scrape.compute_rs_weights).
    function rsWeights(uint256 e, uint256 count) internal pure returns (uint256[] memory mu) {
        mu = new uint256[](count);
        bytes32 dst = DST_RS_DUAL_WORD;
        uint256 r = BN254.R;
        assembly ("memory-safe") {
            // scratch past the free pointer: DST (22) || uint256 e || uint16 j = 56 bytes
            let f := mload(0x40)
            mstore(f, dst)
            mstore(add(f, 22), e)
            for { let j := 0 } lt(j, count) { j := add(j, 1) } {
                mstore(add(f, 54), shl(240, j)) // bytes 54..55; the rest is not hashed
                mstore(add(add(mu, 0x20), shl(5, j)), mod(keccak256(f, 56), r))
            }
        }
    }

    /// @notice The dual codeword c = sum_j mu_j * Delta_j mod r of length n (SPEC.md §2.4;
    /// pvss.field.dual_codeword): Delta_j has (-1)^(t+1-i) * C(t+1, i) at position j+i.
    /// Computed as the coefficients of mu(X) * (X - 1)^(t+1), i.e. t+1 in-place passes
    /// c_k <- c_{k-1} - c_k: no binomial, no inversion, never above r.
    /// Needs mu.length == n - t - 1 >= 1.
    function dualCodeword(uint256 n, uint256 t, uint256[] memory mu) internal pure returns (uint256[] memory c) {
        uint256 count = mu.length;
        require(count != 0 && count + t + 1 == n, "dualCodeword: need n - t - 1 weights");
        c = new uint256[](n); // zeroed
        uint256 r = BN254.R;
        assembly ("memory-safe") {
            let base := add(c, 0x20)
            mcopy(base, add(mu, 0x20), shl(5, count))
            // pass p (0 .. t) raises the degree from count-1+p to count+p
            for { let p := 0 } iszero(gt(p, t)) { p := add(p, 1) } {
                let slot := add(base, shl(5, add(count, p)))
                for {} gt(slot, base) { slot := sub(slot, 0x20) } {
                    mstore(slot, addmod(mload(sub(slot, 0x20)), sub(r, mload(slot)), r))
                }
                mstore(base, mod(sub(r, mload(base)), r))
            }
        }
    }

    /// @dev sum_k c_k * v_k == identity, with c from the Fiat–Shamir weights of e
    function _checkRs(bytes memory tr, uint256 e, uint256 n, uint256 t) private view {
        uint256[] memory c = dualCodeword(n, t, rsWeights(e, n - t - 1));
        uint256 accX;
        uint256 accY;
        for (uint256 i; i < n; ++i) {
            uint256 ci = c[i];
            if (ci == 0) continue;
            (uint256 vx, uint256 vy) = _point(tr, TR_HEADER + i * TR_RECORD + 64);
            (vx, vy) = BN254.mul(vx, vy, ci);
            (accX, accY) = BN254.add(accX, accY, vx, vy);
        }
        if (accX | accY != 0) revert RsCheckFailed();
    }

    // ---------------------------------------------------------------- decrypted shares

    /// @notice The encrypted share s_hat_k (64 bytes) that member `index` decrypts, cut
    /// from a dealing (checks the dealing header; the point is checked by
    /// verifyDecryptedShare). Reverts NoSuchPoint unless 1 <= index is a point of it.
    function shareEncryption(bytes memory dealing, uint256 index) internal pure returns (bytes memory sHat) {
        (, bool hasRecipient, uint256 n) = dealingHeader(dealing);
        if (index == 0) revert NoSuchPoint(index); // the recipient's point never posts a share
        uint256 pos = hasRecipient ? index : index - 1;
        if (pos >= n) revert NoSuchPoint(index);
        uint256 off = DEALING_HEADER_BYTES + pos * RECORD_BYTES + 64;
        sHat = new bytes(64);
        assembly ("memory-safe") {
            mcopy(add(sHat, 0x20), add(add(dealing, 0x20), off), 64)
        }
    }

    /// @notice The index k of a 226-byte decrypted share (checks length and k >= 1).
    function shareIndex(bytes memory share) internal pure returns (uint256 index) {
        if (share.length != DECRYPTED_SHARE_BYTES) revert InvalidLength(Field.Share, share.length);
        index = _word(share, 0) >> 240;
        if (index == 0) revert InvalidEncoding(Field.ShareIndex, 0);
    }

    /// @notice Verifies member k's decrypted share `share` = uint16 k || S_k || A1 || A2 || z
    /// (SPEC.md §4.5) of the encrypted share `sHat` (s_hat_k of the dealing; the caller
    /// picks it for the share's index k) under the member's key `pk`:
    /// e = keccak256(DST_DECRYPTED_SHARE || context || uint16 k || pk || s_hat_k || S_k ||
    /// A1 || A2) mod r, then z*H + e*pk == A1 and z*S_k + e*s_hat_k == A2.
    /// Returns k and S_k.
    function verifyDecryptedShare(bytes memory context, bytes memory pk, bytes memory sHat, bytes memory share)
        internal
        view
        returns (uint256 index, uint256 sx, uint256 sy)
    {
        checkContext(context);
        index = shareIndex(share);
        (sx, sy) = _checkedPoint(share, 2, Field.SharePoint, index);
        (uint256 a1x, uint256 a1y) = _checkedPoint(share, 66, Field.A1, index);
        (uint256 a2x, uint256 a2y) = _checkedPoint(share, 130, Field.A2, index);
        uint256 z = _word(share, 194);
        if (z >= BN254.R) revert InvalidEncoding(Field.Response, index);
        if (pk.length != 64) revert InvalidLength(Field.PublicKey, pk.length);
        (uint256 px, uint256 py) = _checkedPoint(pk, 0, Field.PublicKey, index);
        if (sHat.length != 64) revert InvalidLength(Field.SHat, sHat.length);
        (uint256 hx, uint256 hy) = _checkedPoint(sHat, 0, Field.SHat, index);
        // DST (30) || context (69) || uint16 k || pk || s_hat_k || S_k || A1 || A2: 421 bytes
        bytes32 dst = DST_DECRYPTED_SHARE_WORD;
        uint256 h;
        assembly ("memory-safe") {
            let f := mload(0x40) // scratch, not allocated
            mstore(f, dst)
            mcopy(add(f, 30), add(context, 0x20), 69)
            mstore(add(f, 99), shl(240, index))
            mstore(add(f, 101), px)
            mstore(add(f, 133), py)
            mstore(add(f, 165), hx)
            mstore(add(f, 197), hy)
            mstore(add(f, 229), sx)
            mstore(add(f, 261), sy)
            mstore(add(f, 293), a1x)
            mstore(add(f, 325), a1y)
            mstore(add(f, 357), a2x)
            mstore(add(f, 389), a2y)
            h := keccak256(f, 421)
        }
        uint256 e = h % BN254.R;
        (uint256 cx, uint256 cy) = BN254.mulAdd(BN254.H_X, BN254.H_Y, z, px, py, e);
        if (cx != a1x || cy != a1y) revert ShareProofFailed(index);
        (cx, cy) = BN254.mulAdd(sx, sy, z, hx, hy, e);
        if (cx != a2x || cy != a2y) revert ShareProofFailed(index);
    }

    // ---------------------------------------------------------------- share posts

    /// @notice The member index k and share count N of a share post
    /// `uint16 k || uint16 N || N x S_i || A1 || A2 || z` (SPEC.md §4.5): checks the
    /// length (164 + 64 N), N >= 1 and k >= 1.
    function sharePostHeader(bytes memory post) internal pure returns (uint256 index, uint256 n) {
        if (post.length < SHARE_POST_HEADER_BYTES) revert InvalidLength(Field.SharePost, post.length);
        uint256 w = _word(post, 0);
        index = w >> 240;
        n = (w >> 224) & 0xffff;
        if (n == 0 || post.length != SHARE_POST_HEADER_BYTES + 64 * n + DLEQ_PROOF_BYTES) {
            revert InvalidLength(Field.SharePost, post.length);
        }
        if (index == 0) revert InvalidEncoding(Field.ShareIndex, 0);
    }

    /// @dev seed = keccak256(DST_SHARE_POST || uint16 k || pk || uint16 N ||
    /// N x (context_i || s_hat_i || S_i)), every context, s_hat_i and S_i checked
    /// (errors carry the share's position i in the post)
    function _sharePostSeed(
        uint256 index,
        uint256 n,
        uint256 px,
        uint256 py,
        bytes memory contexts,
        bytes memory sHats,
        bytes memory post
    ) private pure returns (bytes32 seed) {
        bytes memory tr = new bytes(SP_HEADER + SP_RECORD * n);
        bytes32 dst = DST_SHARE_POST_WORD;
        assembly ("memory-safe") {
            let f := add(tr, 0x20)
            mstore(f, dst)
            mstore(add(f, 25), shl(240, index))
            mstore(add(f, 27), px)
            mstore(add(f, 59), py)
            mstore(add(f, 91), shl(240, n))
        }
        for (uint256 i; i < n; ++i) {
            if (uint8(contexts[CONTEXT_BYTES * i + 64]) > PURPOSE_OTHER) revert InvalidEncoding(Field.Purpose, i);
            (uint256 hx, uint256 hy) = _checkedPoint(sHats, 64 * i, Field.SHat, i);
            (uint256 sx, uint256 sy) = _checkedPoint(post, SHARE_POST_HEADER_BYTES + 64 * i, Field.SharePoint, i);
            assembly ("memory-safe") {
                let r := add(add(tr, 0x20), add(SP_HEADER, mul(SP_RECORD, i)))
                mcopy(r, add(add(contexts, 0x20), mul(CONTEXT_BYTES, i)), CONTEXT_BYTES)
                mstore(add(r, 69), hx)
                mstore(add(r, 101), hy)
                mstore(add(r, 133), sx)
                mstore(add(r, 165), sy)
            }
        }
        seed = keccak256(tr);
    }

    /// @dev S* = sum rho_i S_i and s_hat* = sum rho_i s_hat_i (2 ecMul + 2 ecAdd per
    /// share), rho_{2j} || rho_{2j+1} = keccak256(seed || uint32 j)
    function _sharePostStars(bytes32 seed, uint256 n, bytes memory sHats, bytes memory post)
        private
        view
        returns (uint256 sx, uint256 sy, uint256 ux, uint256 uy)
    {
        uint256 h;
        for (uint256 i; i < n; ++i) {
            uint256 rho;
            if (i & 1 == 0) {
                assembly ("memory-safe") {
                    // keccak256(seed || uint32 j) in the scratch space (0x00..0x3f)
                    mstore(0x00, seed)
                    mstore(0x20, shl(224, shr(1, i)))
                    h := keccak256(0x00, 36)
                }
                rho = h >> 128;
            } else {
                rho = h & type(uint128).max;
            }
            (uint256 x, uint256 y) = _point(post, SHARE_POST_HEADER_BYTES + 64 * i);
            (x, y) = BN254.mul(x, y, rho);
            (sx, sy) = BN254.add(sx, sy, x, y);
            (x, y) = _point(sHats, 64 * i);
            (x, y) = BN254.mul(x, y, rho);
            (ux, uy) = BN254.add(ux, uy, x, y);
        }
    }

    /// @notice Verifies member k's share post `post` (SPEC.md §4.5): N decrypted shares
    /// S_i of the encrypted shares `sHats` (N x 64, s_hat_k of each dealing, in post
    /// order) under the contexts `contexts` (N x 69) and the member's key `pk`, with one
    /// DLEQ for (H, pk, S*, s_hat*): seed as in _sharePostSeed, the weights rho_i,
    /// e = keccak256(DST_SHARE_POST_PROOF || seed || S* || s_hat* || A1 || A2) mod r,
    /// then z*H + e*pk == A1 and z*S* + e*s_hat* == A2. Returns k and N.
    function verifySharePost(bytes memory pk, bytes memory contexts, bytes memory sHats, bytes memory post)
        internal
        view
        returns (uint256 index, uint256 n)
    {
        (index, n) = sharePostHeader(post);
        if (contexts.length != CONTEXT_BYTES * n) revert InvalidLength(Field.Context, contexts.length);
        if (sHats.length != 64 * n) revert InvalidLength(Field.SHat, sHats.length);
        if (pk.length != 64) revert InvalidLength(Field.PublicKey, pk.length);
        (uint256 px, uint256 py) = _checkedPoint(pk, 0, Field.PublicKey, index);
        uint256 off = SHARE_POST_HEADER_BYTES + 64 * n;
        (uint256 a1x, uint256 a1y) = _checkedPoint(post, off, Field.A1, index);
        (uint256 a2x, uint256 a2y) = _checkedPoint(post, off + 64, Field.A2, index);
        uint256 z = _word(post, off + 128);
        if (z >= BN254.R) revert InvalidEncoding(Field.Response, index);
        bytes32 seed = _sharePostSeed(index, n, px, py, contexts, sHats, post);
        (uint256 sx, uint256 sy, uint256 ux, uint256 uy) = _sharePostStars(seed, n, sHats, post);
        uint256 e = uint256(
            keccak256(abi.encodePacked(bytes31(DST_SHARE_POST_PROOF_WORD), seed, sx, sy, ux, uy, a1x, a1y, a2x, a2y))
        ) % BN254.R;
        (uint256 cx, uint256 cy) = BN254.mulAdd(BN254.H_X, BN254.H_Y, z, px, py, e);
        if (cx != a1x || cy != a1y) revert SharePostFailed(index);
        (cx, cy) = BN254.mulAdd(sx, sy, z, ux, uy, e);
        if (cx != a2x || cy != a2y) revert SharePostFailed(index);
    }

    // ---------------------------------------------------------------- proof of possession

    /// @notice Verifies a Schnorr proof of possession `proof` = e || z of `pk` for
    /// `party` in round `round` on (chainId, board) (SPEC.md §3.4): pk valid and not the
    /// identity, A = z*H + e*pk, e == keccak256(DST_POP || uint256 chainId ||
    /// address board || uint64 round || uint32 party || pk || A) mod r.
    function verifyPop(uint256 chainId, address board, uint64 round, uint32 party, bytes memory pk, bytes memory proof)
        internal
        view
    {
        (uint256 px, uint256 py) = _key(pk, Field.PublicKey, party);
        if (proof.length != PROOF_BYTES) revert InvalidLength(Field.Proof, proof.length);
        uint256 e = _word(proof, 0);
        if (e >= BN254.R) revert InvalidEncoding(Field.Challenge, party);
        uint256 z = _word(proof, 32);
        if (z >= BN254.R) revert InvalidEncoding(Field.Response, party);
        (uint256 ax, uint256 ay) = BN254.mulAdd(BN254.H_X, BN254.H_Y, z, px, py, e);
        bytes32 h = keccak256(abi.encodePacked(DST_POP, chainId, board, round, party, px, py, ax, ay));
        if (uint256(h) % BN254.R != e) revert PopFailed(party);
    }

    // ---------------------------------------------------------------- seed reveal

    /// @notice Verifies member `member`'s seed reveal (SPEC.md §6.10, pvss.keys
    /// verify_seed_reveal): `gamma` = Gamma (64 bytes, valid, not the identity) and
    /// `proof` = A1 || A2 || z (160 bytes, commitment-form DLEQ) that log_H pk =
    /// log_{H_SEED} Gamma, e = keccak256(DST_SEED_REVEAL || uint256 chainId ||
    /// address board || uint64 round || uint32 member || pk || H_SEED || Gamma || A1 ||
    /// A2) mod r, z*H + e*pk == A1 and z*H_SEED + e*Gamma == A2. `pk` = (px, py) is the
    /// member's registered key. Returns Gamma.
    function verifySeedReveal(
        uint256 chainId,
        address board,
        uint64 round,
        uint32 member,
        uint256 px,
        uint256 py,
        bytes memory gamma,
        bytes memory proof
    ) internal view returns (uint256 gx, uint256 gy) {
        (gx, gy) = _key(gamma, Field.Gamma, member);
        if (proof.length != SEED_PROOF_BYTES) revert InvalidLength(Field.Proof, proof.length);
        (uint256 a1x, uint256 a1y) = _checkedPoint(proof, 0, Field.A1, member);
        (uint256 a2x, uint256 a2y) = _checkedPoint(proof, 64, Field.A2, member);
        uint256 z = _word(proof, 128);
        if (z >= BN254.R) revert InvalidEncoding(Field.Response, member);
        uint256 e = uint256(
            keccak256(
                bytes.concat(
                    abi.encodePacked(DST_SEED_REVEAL, chainId, board, round, member, px, py),
                    abi.encodePacked(BN254.H_SEED_X, BN254.H_SEED_Y, gx, gy, a1x, a1y, a2x, a2y)
                )
            )
        ) % BN254.R;
        (uint256 cx, uint256 cy) = BN254.mulAdd(BN254.H_X, BN254.H_Y, z, px, py, e);
        if (cx != a1x || cy != a1y) revert SeedRevealFailed(member);
        (cx, cy) = BN254.mulAdd(BN254.H_SEED_X, BN254.H_SEED_Y, z, gx, gy, e);
        if (cx != a2x || cy != a2y) revert SeedRevealFailed(member);
    }
}

// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

import {BadConfig, WrongSigner, PvssRound, PvssRoundBase} from "./PvssRound.sol";

/// @title PvssRoundInit — creates a round as a clone of PvssRound (SPEC.md §7.3 "Clones").
/// @notice A round's creation code (built by secagg.boards.evm.clone_initcode) delegates
/// to `init`, which runs in the new round's context: it checks the config, seats the
/// roster, packs the config exactly as secagg.posts.config_packed, checks the
/// aggregator's signature on event 0, starts the hash chain, emits RoundCreated and
/// returns the round's runtime code — a proxy to `implementation` followed by the
/// config it reads (ARGS_BYTES, PvssRoundBase). The config the clone enforces is
/// therefore computed here from the same `cfg` that event 0 packs. One per chain.
contract PvssRoundInit is PvssRoundBase {
    /// @notice the PvssRound every clone made here delegates to
    PvssRound public immutable implementation;

    /// @dev the clone's code around the implementation's address (54 bytes): copy the
    /// calldata, append the config (the ARGS_BYTES after these 54 bytes), DELEGATECALL,
    /// return or revert with the return data
    bytes18 internal constant PROXY_HEAD = 0x365f5f3760f4603636395f5f60f436015f73;
    bytes16 internal constant PROXY_TAIL = 0x5af43d5f5f3e6032573d5ffd5b3d5ff3;

    constructor(PvssRound implementation_) {
        implementation = implementation_;
    }

    /// @notice `cfg` is the round's whole configuration; `sig` the aggregator's
    /// signature of event 0 (role 2, sender 0, view 0, digest = config post digest).
    /// Only meaningful as the DELEGATECALL of a round's creation code (called directly
    /// it initialises this contract's own storage, which nothing reads).
    /// BadConfig codes: 0 n < 2 or n > MAX_CHAIN_CLIENTS, 1 t, 2 m > 255, 3 degree
    /// (K >= n, K > MAX_CHAIN_DEGREE or n*K odd), 4 a phase
    /// length 0, 5 challengeBlocks, 6 members, 7 clients, 8 minIncluded,
    /// 9 minNeighbours, 10 confirmQuorum, 11 stake/bond/challengeBlocks/forfeitTo outside
    /// optimistic mode, 13 the round already exists (init ran in this storage).
    /// `rosterCode`: an existing contract whose code is exactly this round's client
    /// roster code (an earlier round's `rosterData` with the same clients), used
    /// instead of creating the same code again; any other address (0) is ignored.
    function init(Config calldata cfgIn, bytes calldata sig, address rosterCode) external {
        if (eventCount != 0) revert BadConfig(13);
        Config memory cfg = cfgIn;
        _checkConfig(cfg);
        _seat(cfg, rosterCode);
        bytes memory packed = _configPacked(cfg);
        bytes32 digest = keccak256(packed);
        address signer = _recover(cfg.roundId, ROLE_AGGREGATOR, 0, bytes32(0), digest, sig);
        if (signer != cfg.aggregator) revert WrongSigner(ROLE_AGGREGATOR, 0, signer);
        // event 0: (prev 0, seq 0, height 0, role aggregator, sender 0, view 0, digest)
        bytes32 h0 = keccak256(abi.encodePacked(bytes32(0), uint64(0), uint64(0), ROLE_AGGREGATOR, uint32(0), bytes32(0), digest));
        head = h0;
        phaseHeads[REGISTER] = h0;
        headsRecorded = 1;
        eventCount = 1;
        emit RoundCreated(packed, digest, sig, block.number);
        bytes memory code = bytes.concat(PROXY_HEAD, bytes20(address(implementation)), PROXY_TAIL, _args(cfg, digest));
        assembly ("memory-safe") {
            return(add(code, 0x20), mload(code))
        }
    }

    /// @dev the clone's config (PvssRoundBase's layout, ARGS_BYTES)
    function _args(Config memory cfg, bytes32 digest) internal view returns (bytes memory) {
        uint64 dealStart_ = cfg.registerBlocks;
        uint64 uploadStart_ = dealStart_ + cfg.dealBlocks;
        uint64 unmaskStart_ = uploadStart_ + cfg.uploadBlocks;
        uint64 resultStart_ = unmaskStart_ + cfg.unmaskBlocks;
        bytes memory a = abi.encodePacked(
            cfg.roundId, cfg.nClients, cfg.committeeSize, cfg.threshold, cfg.degree,
            dealStart_, uploadStart_, unmaskStart_, resultStart_
        );
        a = abi.encodePacked(
            a,
            uint64((_vectorLength(cfg.dim, cfg.dpDigest) * cfg.bits + 7) / 8),
            cfg.optimistic,
            cfg.clients.length == 0,
            cfg.challengeBlocks,
            cfg.minIncluded,
            cfg.minNeighbours,
            cfg.confirmQuorum
        );
        a = abi.encodePacked(a, cfg.aggregator, cfg.forfeitTo, cfg.stake, cfg.bond, digest, block.number);
        if (a.length != ARGS_BYTES) revert BadConfig(14);
        return a;
    }

    /// @dev keccak256 of the "no DP" record (secagg.config.dp_record_bytes(NO_DP))
    bytes32 internal constant NO_DP_DIGEST = 0x525041d309e650b9e4c66e3446d28b909f0e416c6d8a5f1ca5afca89bc4cfd4a;

    /// @dev coordinates of a masked vector (secagg RoundConfig.vector_length): dim + 1, or
    /// with DP the rotation's padded dimension (next power of two >= dim) + 1 (SPEC §10.6)
    function _vectorLength(uint32 dim, bytes32 dpDigest) internal pure returns (uint256) {
        if (dpDigest == NO_DP_DIGEST) return uint256(dim) + 1;
        uint256 p = 1;
        while (p < dim) p <<= 1;
        return p + 1;
    }

    function _checkConfig(Config memory cfg) internal pure {
        uint256 n = cfg.nClients;
        uint256 m = cfg.committeeSize;
        if (n < 2 || n > MAX_CHAIN_CLIENTS) revert BadConfig(0);
        if (cfg.threshold == 0 || cfg.threshold >= m || (cfg.honestMajority && 2 * uint256(cfg.threshold) >= m)) {
            revert BadConfig(1);
        }
        if (m > 255) revert BadConfig(2); // share and member bitmaps
        if (cfg.degree >= n || cfg.degree > MAX_CHAIN_DEGREE || (uint256(cfg.degree) * n) % 2 != 0) revert BadConfig(3);
        if (cfg.registerBlocks == 0 || cfg.dealBlocks == 0 || cfg.uploadBlocks == 0 || cfg.unmaskBlocks == 0) {
            revert BadConfig(4);
        }
        if (cfg.optimistic && cfg.challengeBlocks >= cfg.dealBlocks) revert BadConfig(5);
        if (cfg.members.length != m) revert BadConfig(6);
        if (cfg.clients.length != 0 && cfg.clients.length != n) revert BadConfig(7);
        if (cfg.minIncluded < 2 || cfg.minIncluded > n) revert BadConfig(8);
        uint256 deg = cfg.degree == 0 ? n - 1 : cfg.degree;
        if (cfg.minNeighbours == 0 || cfg.minNeighbours > deg) revert BadConfig(9);
        if (cfg.confirmQuorum < (m + cfg.threshold + 2) / 2 || cfg.confirmQuorum > m) revert BadConfig(10);
        if (!cfg.optimistic && (cfg.challengeBlocks != 0 || cfg.stake != 0 || cfg.bond != 0 || cfg.forfeitTo != address(0))) {
            revert BadConfig(11);
        }
    }

    /// @dev the roster: member seats, and client seats under closed membership;
    /// identities distinct and non-zero within each list (transient storage marks)
    function _seat(Config memory cfg, address hint) internal {
        for (uint256 k; k < cfg.members.length; ++k) {
            address a = cfg.members[k];
            if (a == address(0) || _marked(a, 0)) revert BadConfig(6);
            memberIdentity[uint32(k + 1)] = a;
        }
        uint256 n = cfg.clients.length;
        if (n == 0) return;
        // client seats as code (SPEC.md §7.3 "Roster"): 0x00 || 20 bytes per seat, 200 gas
        // a byte once instead of a storage slot (22 100 gas) per seat. Its creation code
        // PUSH2 len DUP1 PUSH1 12 PUSH1 0 CODECOPY PUSH1 0 RETURN returns what follows it.
        uint256 len = 1 + 20 * n;
        bytes memory initcode = new bytes(12 + len + 12); // 12 spare: the last mstore's tail
        initcode[0] = 0x61;
        initcode[1] = bytes1(uint8(len >> 8));
        initcode[2] = bytes1(uint8(len));
        bytes9 tail = hex"80600c6000396000f3";
        for (uint256 j; j < 9; ++j) initcode[3 + j] = tail[j];
        for (uint256 i; i < n; ++i) {
            address a = cfg.clients[i];
            if (a == address(0) || _marked(a, 1)) revert BadConfig(7);
            assembly ("memory-safe") {
                mstore(add(add(initcode, 0x2d), mul(i, 20)), shl(96, a)) // after 12 + 1 bytes
            }
        }
        address made;
        assembly ("memory-safe") {
            mstore(initcode, add(12, len))
            // the same seats already as code (code is immutable since EIP-6780): reuse it
            if eq(extcodehash(hint), keccak256(add(initcode, 0x2c), len)) { made := hint }
            if iszero(made) { made := create(0, add(initcode, 0x20), add(12, len)) }
        }
        if (made == address(0)) revert BadConfig(7);
        rosterData = made;
    }

    /// @dev whether (a, list) was marked in this transaction; marks it
    function _marked(address a, uint256 list) internal returns (bool seen) {
        uint256 key = (list << 160) | uint160(a);
        assembly ("memory-safe") {
            seen := tload(key)
            tstore(key, 1)
        }
    }

    /// @dev secagg.posts.config_packed: tag 1, uint256 chainId, address board,
    /// uint64 round, uint32 n, uint16 m, uint16 t, uint8 len || graph, uint32 dim,
    /// uint8 q, uint8 b, clip (8), uint32 W, uint32 R, D, U, X, uint8 honestMajority,
    /// address aggregator, uint16 #members || members, uint32 #clients || clients,
    /// uint32 minIncluded, uint32 minNeighbours, uint16 confirmQuorum, uint8 optimistic,
    /// uint32 challengeBlocks, uint256 stake, uint256 bond, address forfeitTo,
    /// dp record digest (32)
    function _configPacked(Config memory c) internal view returns (bytes memory out) {
        bytes memory graph = c.degree == 0 ? bytes("complete") : abi.encodePacked("regular:", _decimal(c.degree));
        out = abi.encodePacked(
            TAG_CONFIG, block.chainid, address(this), c.roundId, c.nClients, c.committeeSize, c.threshold
        );
        out = abi.encodePacked(out, uint8(graph.length), graph, c.dim, c.quantBits, c.bits, c.clip, c.maxWeight);
        out = abi.encodePacked(out, c.registerBlocks, c.dealBlocks, c.uploadBlocks, c.unmaskBlocks);
        out = abi.encodePacked(out, c.honestMajority ? uint8(1) : uint8(0), c.aggregator);
        out = abi.encodePacked(out, uint16(c.members.length), _packAddresses(c.members));
        out = abi.encodePacked(out, uint32(c.clients.length), _packAddresses(c.clients));
        out = abi.encodePacked(out, c.minIncluded, c.minNeighbours, c.confirmQuorum, c.optimistic ? uint8(1) : uint8(0));
        out = abi.encodePacked(out, c.challengeBlocks, c.stake, c.bond, c.forfeitTo, c.dpDigest);
    }

    /// @dev 20 bytes per address (abi.encodePacked pads array elements to 32)
    function _packAddresses(address[] memory a) internal pure returns (bytes memory out) {
        out = new bytes(a.length * 20 + 12); // 12 bytes of slack for the last mstore
        assembly ("memory-safe") {
            let dst := add(out, 0x20)
            let src := add(a, 0x20)
            for { let i := 0 } lt(i, mload(a)) { i := add(i, 1) } {
                mstore(add(dst, mul(i, 20)), shl(96, mload(add(src, mul(i, 0x20)))))
            }
            mstore(out, mul(mload(a), 20))
        }
    }

    function _decimal(uint256 v) internal pure returns (bytes memory out) {
        uint256 len = 1;
        for (uint256 x = v; x >= 10; x /= 10) len++;
        out = new bytes(len);
        for (uint256 i = len; i > 0; --i) {
            out[i - 1] = bytes1(uint8(48 + (v % 10)));
            v /= 10;
        }
    }
}

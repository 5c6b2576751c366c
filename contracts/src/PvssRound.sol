// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

import {BN254} from "./BN254.sol";
import {Pvss, ThresholdMismatch, RecipientMismatch, KeyCountMismatch} from "./Pvss.sol";

/// @notice a post in the wrong phase (phases as in SPEC.md §6.4: 0 register, 1 deal,
/// 2 upload, 3 unmask, 4 result); `height` is block.number - startBlock
error WrongPhase(uint8 expected, uint8 actual, uint256 height);
/// @notice this account already registered a party (one account, one party)
error AccountAlreadyRegistered(address account);
/// @notice role is neither client (0) nor member (1)
error InvalidRole(uint8 role);
/// @notice the party id is outside 1..limit
error IdOutOfRange(uint8 role, uint32 party, uint32 limit);
/// @notice this (role, party) is already registered
error AlreadyRegistered(uint8 role, uint32 party);
/// @notice msg.value is not the stake (client registration) or the bond (challenge)
error WrongValue(uint256 expected, uint256 actual);
/// @notice the sender's account is not a registered party of the role the post needs
error NotRegistered(address account, uint8 role);
/// @notice the client already posted its dealings
error AlreadyDealt(uint32 dealer);
/// @notice not every committee member registered: the round cannot proceed
error CommitteeIncomplete(uint32 registered, uint32 committeeSize);
/// @notice the packed committee keys given are not the registered ones
error CommitteeKeysMismatch();
/// @notice the items are not exactly: the self dealing, then one pair dealing per
/// registered neighbour j > dealer in increasing j (item = first wrong position)
error WrongDealingSet(uint32 dealer, uint256 item, uint256 expectedItems);
/// @notice optimistic mode: dealings are accepted only until `lastHeight` so every
/// challenge window closes inside the deal phase
error DealingWindowClosed(uint256 lastHeight);
/// @notice the client has no accepted dealings (never dealt, or excluded by a challenge)
error NoAcceptedDealings(uint32 client);
/// @notice the client already posted its masked input (clients upload once)
error AlreadyUploaded(uint32 client);
/// @notice the masked vector's size is not ceil((d+1)*b/8)
error WrongSize(uint64 expected, uint64 actual);
/// @notice the included set U does not allow a share of this dealing (SPEC.md §6.5)
error ShareNotAllowed(uint32 dealer, uint8 purpose, uint32 partner);
/// @notice this member already posted a share of this dealing
error ShareAlreadyPosted(uint32 dealer, uint8 purpose, uint32 partner);
/// @notice the share's index is not the sender's member id
error ShareIndexMismatch(uint256 index, uint32 member);
/// @notice the dealing bytes given are not the ones accepted (keccak256 differs)
error DealingMismatch(uint32 dealer, uint8 purpose, uint32 partner);
/// @notice only the round's aggregator posts the result
error NotAggregator(address account);
/// @notice the result was already posted
error ResultAlreadyPosted();
/// @notice the result's included set is not U
error IncludedMismatch(uint256 position);
/// @notice some allowed dealing has fewer than t+1 verified shares
error NotEnoughShares(uint256 complete, uint256 allowed);
/// @notice challenge() in full mode (every dealing was verified on submission)
error NotOptimistic();
/// @notice no accepted dealing of this key to challenge
error NothingToChallenge(uint32 dealer, uint8 purpose, uint32 partner);
/// @notice the challenge window of this dealer's post has closed
error ChallengeWindowClosed(uint256 lastHeight);
/// @notice no stake to withdraw (not a staked client, excluded, or already withdrawn)
error NothingToWithdraw();
/// @notice an Ether transfer failed
error TransferFailed();
/// @notice round parameters the contract cannot work with
error BadConfig(uint256 code);

/// @title PvssRound — one secure-aggregation round on-chain (SPEC.md §6.4 board rules).
/// @notice One contract per round: its address is the `board` of every context (SPEC.md
/// §3.2) and of every proof of possession, so nothing replays into another round or
/// contract. Phases follow block height h = block.number - startBlock with the lengths
/// fixed at creation. Every accepted post emits events carrying the whole message, so
/// the round's transcript (secagg.evm_board) is rebuilt from the event log alone.
/// The contract keeps the SPEC event hash chain through registration (it encodes each
/// Registration exactly as secagg.codec does), so the round seed and the mask graph
/// are the ones MemoryBoard derives.
///
/// Design choices and where the rules differ from secagg.board.MemoryBoard:
/// - The graph is computed on-chain (Fisher–Yates over keccak, O(n) per dealings post
///   for regular:K), so the contract itself checks which pair dealings a dealer owes.
/// - Dealings must come in canonical order (self, then partners increasing);
///   MemoryBoard accepts any order of the same set.
/// - U is computed on-chain by `close()` (anyone; the first share post or the result
///   calls it): uploaded clients with an uploaded neighbour, equal to SPEC's fixpoint.
/// - Shares carry the accepted dealing's bytes (checked against its stored keccak256).
/// - Party ids are first come, first served per account; one account, one party.
/// - A revert rolls everything back, so on-chain fault counters only count what a
///   challenge proves; rejected posts are named by the revert, not recorded.
/// - Optimistic mode: dealings must be posted while their whole challenge window still
///   fits in the deal phase, so exclusions happen before anyone masks with them.
contract PvssRound {
    uint8 internal constant ROLE_CLIENT = 0;
    uint8 internal constant ROLE_MEMBER = 1;
    uint8 internal constant ROLE_AGGREGATOR = 2;
    uint8 internal constant PURPOSE_SELF = 0;
    uint8 internal constant PURPOSE_PAIR = 1;
    uint8 internal constant REGISTER = 0;
    uint8 internal constant DEAL = 1;
    uint8 internal constant UPLOAD = 2;
    uint8 internal constant UNMASK = 3;
    uint8 internal constant RESULT = 4;
    bytes internal constant DST_ROUND_SEED = "pvss-secagg/v1/round-seed";
    bytes internal constant DST_GRAPH = "pvss-secagg/v1/graph";

    // client flags
    uint8 internal constant F_REGISTERED = 1;
    uint8 internal constant F_DEALT = 2;
    uint8 internal constant F_EXCLUDED = 4;
    uint8 internal constant F_UPLOADED = 8;
    uint8 internal constant F_WITHDRAWN = 16;

    /// @notice fixed at creation
    struct Config {
        uint64 roundId;
        uint32 nClients;
        uint16 committeeSize;
        uint16 threshold;
        uint32 degree; // K of regular:K; 0 = complete graph
        uint32 registerBlocks;
        uint32 dealBlocks;
        uint32 uploadBlocks;
        uint32 unmaskBlocks;
        uint64 maskedSize; // ceil((dim + 1) * bits / 8)
        bool optimistic;
        uint32 challengeBlocks; // optimistic: blocks a dealing post can be challenged
        uint256 stake; // optimistic: Ether a client locks at registration
        uint256 bond; // optimistic: Ether a challenger locks
        address aggregator;
    }

    struct Client {
        address account;
        uint8 flags;
        uint64 dealtAt; // height of the dealings post
    }

    struct Reputation {
        uint64 validDealings;
        uint64 validShares;
        uint64 faults;
    }

    /// @notice one dealing as posted
    struct DealingIn {
        uint8 purpose;
        uint32 partner;
        bytes dealing;
    }

    /// @notice one decrypted share, with the accepted dealing it decrypts
    struct ShareIn {
        uint32 dealer;
        uint8 purpose;
        uint32 partner;
        bytes share;
        bytes dealing;
    }

    // ------------------------------------------------------------------ events
    /// @notice event 0 of the transcript: the round configuration bytes (secagg.codec)
    event RoundCreated(bytes config, bytes32 configHash, uint256 startBlock);
    event Registered(address indexed account, uint8 role, uint32 party, bytes pk, bytes pop);
    /// @notice one item of a dealings post (emitted in item order, then DealingsPosted)
    event Dealing(uint32 indexed dealer, uint8 purpose, uint32 partner, bytes32 dealingHash, bytes dealing);
    event DealingsPosted(uint32 indexed dealer, uint256 items, bool verified);
    event DealerExcluded(uint32 indexed dealer, address indexed challenger, uint8 purpose, uint32 partner, bytes reason);
    event ChallengeRejected(uint32 indexed dealer, address indexed challenger, uint8 purpose, uint32 partner);
    event MaskedInput(uint32 indexed client, bytes32 digest, uint64 size);
    event IncludedSet(uint32[] included, uint256 allowedDealings);
    event Share(uint32 indexed member, uint32 dealer, uint8 purpose, uint32 partner, bytes share);
    event SharesPosted(uint32 indexed member, uint256 items);
    event ResultPosted(bytes32 digest, uint32[] included, uint64 totalWeight);

    // ------------------------------------------------------------------ configuration
    uint64 public immutable roundId;
    uint32 public immutable nClients;
    uint16 public immutable committeeSize;
    uint16 public immutable threshold;
    uint32 public immutable degree;
    uint256 public immutable startBlock;
    uint256 public immutable dealStart;
    uint256 public immutable uploadStart;
    uint256 public immutable unmaskStart;
    uint256 public immutable resultStart;
    uint64 public immutable maskedSize;
    bool public immutable optimistic;
    uint32 public immutable challengeBlocks;
    uint256 public immutable stake;
    uint256 public immutable bond;
    address public immutable aggregator;
    bytes32 public immutable configHash;

    // ------------------------------------------------------------------ state
    /// @notice SPEC §6.4 event hash chain; frozen when registration closes
    bytes32 public head;
    uint64 public eventCount;
    /// @notice (1 + role) << 32 | party of a registered account, 0 if none
    mapping(address => uint256) public accountOf;
    mapping(uint32 => Client) public clients;
    mapping(uint32 => uint256[2]) internal clientPk;
    mapping(uint32 => uint256[2]) internal memberPk;
    mapping(uint32 => address) public memberAccount;
    uint32 public registeredMembers;
    bytes32 public committeeKeysHash;
    /// @notice keccak256 of each accepted dealing, by dealingKey(dealer, purpose, partner)
    mapping(uint256 => bytes32) public dealingHash;
    mapping(uint32 => bytes32) public maskedDigest;
    bool public closed;
    mapping(uint256 => uint256) internal includedBits;
    uint32 public includedCount;
    uint32 public allowedDealings;
    uint32 public completeDealings;
    /// @notice bit k set: member k posted a verified share of the dealing
    mapping(uint256 => uint256) public shareBits;
    bytes32 public resultDigest;
    bool public resultPosted;
    mapping(address => Reputation) public reputation;

    constructor(Config memory cfg, bytes memory config) {
        if (cfg.nClients < 2) revert BadConfig(0);
        if (cfg.threshold == 0 || cfg.threshold >= cfg.committeeSize) revert BadConfig(1);
        if (cfg.committeeSize > 255) revert BadConfig(2); // share bitmap
        if (cfg.degree >= cfg.nClients) revert BadConfig(3);
        if (cfg.registerBlocks == 0 || cfg.dealBlocks == 0 || cfg.uploadBlocks == 0 || cfg.unmaskBlocks == 0) {
            revert BadConfig(4);
        }
        if (cfg.optimistic && cfg.challengeBlocks >= cfg.dealBlocks) revert BadConfig(5);
        roundId = cfg.roundId;
        nClients = cfg.nClients;
        committeeSize = cfg.committeeSize;
        threshold = cfg.threshold;
        degree = cfg.degree;
        startBlock = block.number;
        dealStart = cfg.registerBlocks;
        uploadStart = uint256(cfg.registerBlocks) + cfg.dealBlocks;
        unmaskStart = uint256(cfg.registerBlocks) + cfg.dealBlocks + cfg.uploadBlocks;
        resultStart = uint256(cfg.registerBlocks) + cfg.dealBlocks + cfg.uploadBlocks + cfg.unmaskBlocks;
        maskedSize = cfg.maskedSize;
        optimistic = cfg.optimistic;
        challengeBlocks = cfg.challengeBlocks;
        stake = cfg.stake;
        bond = cfg.bond;
        aggregator = cfg.aggregator;
        configHash = keccak256(config);
        // event 0: (prev 0, seq 0, height 0, role aggregator, sender 0, body = config)
        head = keccak256(abi.encodePacked(bytes32(0), uint64(0), uint64(0), ROLE_AGGREGATOR, uint32(0), config));
        eventCount = 1;
        emit RoundCreated(config, configHash, block.number);
    }

    // ------------------------------------------------------------------ views

    /// @notice h = block.number - startBlock
    function height() public view returns (uint256) {
        return block.number - startBlock;
    }

    /// @notice the phase at the current height (SPEC.md §6.4 phase_at)
    function phase() public view returns (uint8) {
        uint256 h = height();
        if (h < dealStart) return REGISTER;
        if (h < uploadStart) return DEAL;
        if (h < unmaskStart) return UPLOAD;
        if (h < resultStart) return UNMASK;
        return RESULT;
    }

    /// @notice keccak256(DST_ROUND_SEED || registration head) (SPEC.md §6.3); only
    /// meaningful once registration has closed
    function roundSeed() public view returns (bytes32) {
        return keccak256(abi.encodePacked(DST_ROUND_SEED, head));
    }

    function dealingKey(uint32 dealer, uint8 purpose, uint32 partner) public pure returns (uint256) {
        return (uint256(dealer) << 40) | (uint256(purpose) << 32) | partner;
    }

    function isIncluded(uint32 client) public view returns (bool) {
        return (includedBits[client >> 8] >> (client & 0xff)) & 1 == 1;
    }

    function clientKey(uint32 client) external view returns (uint256, uint256) {
        return (clientPk[client][0], clientPk[client][1]);
    }

    function memberKey(uint32 member) external view returns (uint256, uint256) {
        return (memberPk[member][0], memberPk[member][1]);
    }

    /// @notice the 69-byte context of a dealing of this round (SPEC.md §3.2)
    function context(uint32 dealer, uint8 purpose, uint32 partner) public view returns (bytes memory) {
        return abi.encodePacked(block.chainid, address(this), roundId, dealer, purpose, partner);
    }

    /// @notice neighbours of `client` in the mask graph, increasing (SPEC.md §6.3)
    function neighbours(uint32 client) external view returns (uint32[] memory) {
        return _neighbours(client, degree == 0 ? new uint32[](0) : _permutation());
    }

    // ------------------------------------------------------------------ registration

    /// @notice Registers msg.sender as client or member `party` with key `pk` and a
    /// proof of possession for (chain, this contract, role * 2^24 + party). In
    /// optimistic mode a client locks `stake` Ether.
    function register(uint8 role, uint32 party, bytes calldata pk, bytes calldata pop) external payable {
        _needPhase(REGISTER);
        if (accountOf[msg.sender] != 0) revert AccountAlreadyRegistered(msg.sender);
        uint256 want;
        if (role == ROLE_CLIENT) {
            if (party == 0 || party > nClients) revert IdOutOfRange(role, party, nClients);
            if (clients[party].flags & F_REGISTERED != 0) revert AlreadyRegistered(role, party);
            want = optimistic ? stake : 0;
        } else if (role == ROLE_MEMBER) {
            if (party == 0 || party > committeeSize) revert IdOutOfRange(role, party, committeeSize);
            if (memberAccount[party] != address(0)) revert AlreadyRegistered(role, party);
        } else {
            revert InvalidRole(role);
        }
        if (msg.value != want) revert WrongValue(want, msg.value);
        Pvss.verifyPop(block.chainid, address(this), (uint32(role) << 24) | party, pk, pop);
        uint256 x = uint256(bytes32(pk[0:32]));
        uint256 y = uint256(bytes32(pk[32:64]));
        if (role == ROLE_CLIENT) {
            clients[party] = Client(msg.sender, F_REGISTERED, 0);
            clientPk[party] = [x, y];
        } else {
            memberAccount[party] = msg.sender;
            memberPk[party] = [x, y];
            registeredMembers += 1;
        }
        accountOf[msg.sender] = ((uint256(role) + 1) << 32) | party;
        // the event the memory board would append: body = codec.encode(Registration)
        uint64 seq = eventCount;
        head = keccak256(
            abi.encodePacked(head, seq, uint64(height()), role, party, _registrationBody(role, party, pk, pop))
        );
        eventCount = seq + 1;
        emit Registered(msg.sender, role, party, pk, pop);
    }

    /// @dev msgpack [1, 2, role, party, bin pk, bin pop] exactly as secagg.codec writes it
    function _registrationBody(uint8 role, uint32 party, bytes calldata pk, bytes calldata pop)
        internal
        pure
        returns (bytes memory)
    {
        bytes memory id;
        if (party < 0x80) id = abi.encodePacked(uint8(party));
        else if (party < 0x100) id = abi.encodePacked(uint8(0xcc), uint8(party));
        else if (party < 0x10000) id = abi.encodePacked(uint8(0xcd), uint16(party));
        else id = abi.encodePacked(uint8(0xce), party);
        return abi.encodePacked(uint24(0x960102), role, id, uint16(0xc440), pk, uint16(0xc440), pop);
    }

    // ------------------------------------------------------------------ dealings

    /// @notice The sender's dealings: the self dealing, then one pair dealing per
    /// registered neighbour j > dealer in increasing j (recipient j). `committeePks`
    /// are the m member keys packed (member 1 first), checked against the registered
    /// ones. Full mode verifies every dealing (reverting with the Pvss error);
    /// optimistic mode checks the header, stores the hash and opens a challenge window.
    function postDealings(DealingIn[] calldata items, bytes calldata committeePks) external {
        uint256 h = height();
        _needPhase(DEAL);
        if (optimistic && h + challengeBlocks >= uploadStart) {
            revert DealingWindowClosed(uploadStart - challengeBlocks - 1);
        }
        uint32 dealer = _party(ROLE_CLIENT);
        Client storage c = clients[dealer];
        if (c.flags & F_DEALT != 0) revert AlreadyDealt(dealer);
        if (registeredMembers != committeeSize) revert CommitteeIncomplete(registeredMembers, committeeSize);
        _checkCommittee(committeePks);
        uint32[] memory partners = _neighbours(dealer, degree == 0 ? new uint32[](0) : _permutation());
        uint256 want = 1;
        for (uint256 i; i < partners.length; ++i) {
            if (partners[i] > dealer && clients[partners[i]].flags & F_REGISTERED != 0) partners[want++ - 1] = partners[i];
        }
        if (items.length != want) revert WrongDealingSet(dealer, items.length < want ? items.length : want, want);
        for (uint256 i; i < items.length; ++i) {
            DealingIn calldata it = items[i];
            bytes memory rpk;
            if (i == 0) {
                if (it.purpose != PURPOSE_SELF || it.partner != 0) revert WrongDealingSet(dealer, i, want);
            } else {
                if (it.purpose != PURPOSE_PAIR || it.partner != partners[i - 1]) revert WrongDealingSet(dealer, i, want);
                rpk = abi.encodePacked(clientPk[it.partner][0], clientPk[it.partner][1]);
            }
            bytes memory ctx = context(dealer, it.purpose, it.partner);
            if (optimistic) {
                _checkHeader(it.dealing, i != 0);
            } else {
                Pvss.verifyDealing(ctx, threshold, committeePks, rpk, it.dealing);
            }
            bytes32 dh = keccak256(it.dealing);
            dealingHash[dealingKey(dealer, it.purpose, it.partner)] = dh;
            emit Dealing(dealer, it.purpose, it.partner, dh, it.dealing);
        }
        c.flags |= F_DEALT;
        c.dealtAt = uint64(h);
        reputation[msg.sender].validDealings += uint64(items.length);
        emit DealingsPosted(dealer, items.length, !optimistic);
    }

    /// @dev optimistic mode: the header must fit the round (t, N, recipient flag)
    function _checkHeader(bytes calldata dealing, bool pair) internal view {
        (uint256 t, bool hasRecipient, uint256 n) = Pvss.dealingHeader(dealing);
        if (t != threshold) revert ThresholdMismatch(threshold, t);
        if (hasRecipient != pair) revert RecipientMismatch(hasRecipient);
        uint256 m = hasRecipient ? n - 1 : n;
        if (m != committeeSize) revert KeyCountMismatch(committeeSize, m);
    }

    function _checkCommittee(bytes calldata committeePks) internal {
        bytes32 want = committeeKeysHash;
        if (want == 0) {
            bytes memory packed;
            for (uint32 k = 1; k <= committeeSize; ++k) {
                packed = abi.encodePacked(packed, memberPk[k][0], memberPk[k][1]);
            }
            want = keccak256(packed);
            committeeKeysHash = want;
        }
        if (keccak256(committeePks) != want) revert CommitteeKeysMismatch();
    }

    /// @notice Optimistic mode: dispute dealing (dealer, purpose, partner) within its
    /// window, giving its bytes (must hash to the stored value) and the committee keys,
    /// with `bond` Ether. Invalid: the dealer is excluded (all its dealings), its stake
    /// and the bond go to the challenger, its fault counter grows. Valid: the bond stays
    /// in the contract and the challenger gets nothing.
    function challenge(
        uint32 dealer,
        uint8 purpose,
        uint32 partner,
        bytes calldata dealing,
        bytes calldata committeePks
    ) external payable {
        if (!optimistic) revert NotOptimistic();
        if (msg.value != bond) revert WrongValue(bond, msg.value);
        Client storage c = clients[dealer];
        uint256 key = dealingKey(dealer, purpose, partner);
        if (c.flags & F_EXCLUDED != 0 || dealingHash[key] == 0) revert NothingToChallenge(dealer, purpose, partner);
        uint256 last = uint256(c.dealtAt) + challengeBlocks;
        if (height() > last) revert ChallengeWindowClosed(last);
        if (keccak256(dealing) != dealingHash[key]) revert DealingMismatch(dealer, purpose, partner);
        _checkCommittee(committeePks);
        bytes memory rpk;
        if (purpose == PURPOSE_PAIR) rpk = abi.encodePacked(clientPk[partner][0], clientPk[partner][1]);
        try this.checkDealing(context(dealer, purpose, partner), committeePks, rpk, dealing) {
            emit ChallengeRejected(dealer, msg.sender, purpose, partner);
        } catch (bytes memory reason) {
            bytes4 sel = reason.length >= 4 ? bytes4(reason) : bytes4(0);
            if (reason.length < 4 || sel == BN254.EcMulFailed.selector || sel == BN254.EcAddFailed.selector) {
                assembly ("memory-safe") {
                    revert(add(reason, 0x20), mload(reason)) // out of gas is not "invalid"
                }
            }
            c.flags |= F_EXCLUDED;
            Reputation storage rep = reputation[c.account];
            rep.faults += 1;
            rep.validDealings = 0;
            emit DealerExcluded(dealer, msg.sender, purpose, partner, reason);
            _send(msg.sender, stake + bond);
        }
    }

    /// @notice Verifies one dealing of this round (used by challenge; reverts with the
    /// Pvss error).
    function checkDealing(bytes calldata ctx, bytes calldata committeePks, bytes calldata rpk, bytes calldata dealing)
        external
        view
        returns (uint256)
    {
        return Pvss.verifyDealing(ctx, threshold, committeePks, rpk, dealing);
    }

    /// @notice After the round, a client that was not excluded takes its stake back.
    function withdrawStake() external {
        _needPhase(RESULT);
        uint32 id = _party(ROLE_CLIENT);
        Client storage c = clients[id];
        if (stake == 0 || c.flags & (F_EXCLUDED | F_WITHDRAWN) != 0) revert NothingToWithdraw();
        c.flags |= F_WITHDRAWN;
        _send(msg.sender, stake);
    }

    // ------------------------------------------------------------------ upload

    /// @notice sha256 and size of the sender's packed masked vector (once per client,
    /// only with accepted dealings).
    function postMaskedInput(bytes32 digest, uint64 size) external {
        _needPhase(UPLOAD);
        uint32 id = _party(ROLE_CLIENT);
        Client storage c = clients[id];
        uint8 flags = c.flags;
        if (flags & F_DEALT == 0 || flags & F_EXCLUDED != 0) revert NoAcceptedDealings(id);
        if (flags & F_UPLOADED != 0) revert AlreadyUploaded(id);
        if (size != maskedSize) revert WrongSize(maskedSize, size);
        c.flags = flags | F_UPLOADED;
        maskedDigest[id] = digest;
        emit MaskedInput(id, digest, size);
    }

    // ------------------------------------------------------------------ included set

    /// @notice Fixes U once the upload phase is over (anyone may call; the first share
    /// or the result calls it too). U = uploaded clients with at least one uploaded
    /// neighbour: this is SPEC's fixpoint, because removing a client without a
    /// neighbour in U removes no edge inside U, so one pass reaches it.
    function close() public {
        if (closed) return;
        uint8 p = phase();
        if (p < UNMASK) revert WrongPhase(UNMASK, p, height());
        uint32 n = nClients;
        uint8[] memory flags = new uint8[](n + 1);
        uint32 uploaded;
        for (uint32 i = 1; i <= n; ++i) {
            flags[i] = clients[i].flags;
            if (flags[i] & F_UPLOADED != 0) uploaded++;
        }
        bool[] memory inU = new bool[](n + 1);
        uint32[] memory perm = degree == 0 ? new uint32[](0) : _permutation();
        uint32 count;
        for (uint32 i = 1; i <= n; ++i) {
            if (flags[i] & F_UPLOADED == 0) continue;
            bool keep;
            if (degree == 0) {
                keep = uploaded >= 2;
            } else {
                uint32[] memory nb = _neighbours(i, perm);
                for (uint256 k; k < nb.length; ++k) {
                    if (flags[nb[k]] & F_UPLOADED != 0) {
                        keep = true;
                        break;
                    }
                }
            }
            if (keep) {
                inU[i] = true;
                count++;
            }
        }
        uint32[] memory list = new uint32[](count);
        uint256 pos;
        uint256 word;
        for (uint32 i = 1; i <= n; ++i) {
            if (inU[i]) {
                list[pos++] = i;
                word |= uint256(1) << (i & 0xff);
            }
            if (i & 0xff == 0xff || i == n) {
                if (word != 0) includedBits[i >> 8] = word;
                word = 0;
            }
        }
        // allowed dealings: self of i in U; accepted pair dealings with one end in U
        uint32 allowed = count;
        for (uint32 i = 1; i <= n; ++i) {
            if (flags[i] & F_DEALT == 0 || flags[i] & F_EXCLUDED != 0) continue;
            uint32[] memory nb = _neighbours(i, perm);
            for (uint256 k; k < nb.length; ++k) {
                uint32 j = nb[k];
                if (j > i && flags[j] & F_REGISTERED != 0 && inU[i] != inU[j]) allowed++;
            }
        }
        includedCount = count;
        allowedDealings = allowed;
        closed = true;
        emit IncludedSet(list, allowed);
    }

    // ------------------------------------------------------------------ shares

    /// @notice The sender's decrypted shares, each verified (DLEQ) against the accepted
    /// dealing given alongside; only for dealings U allows (SPEC.md §6.5).
    function postShares(ShareIn[] calldata items) external {
        _needPhase(UNMASK);
        uint32 member = _party(ROLE_MEMBER);
        close();
        bytes memory pk = abi.encodePacked(memberPk[member][0], memberPk[member][1]);
        uint256 need = uint256(threshold) + 1;
        uint32 completed;
        for (uint256 i; i < items.length; ++i) {
            ShareIn calldata it = items[i];
            uint256 key = dealingKey(it.dealer, it.purpose, it.partner);
            if (!_allowed(it.dealer, it.purpose, it.partner, key)) {
                revert ShareNotAllowed(it.dealer, it.purpose, it.partner);
            }
            uint256 bits = shareBits[key];
            if ((bits >> member) & 1 != 0) revert ShareAlreadyPosted(it.dealer, it.purpose, it.partner);
            if (keccak256(it.dealing) != dealingHash[key]) revert DealingMismatch(it.dealer, it.purpose, it.partner);
            uint256 index = Pvss.shareIndex(it.share);
            if (index != member) revert ShareIndexMismatch(index, member);
            Pvss.verifyDecryptedShare(
                context(it.dealer, it.purpose, it.partner), pk, Pvss.shareEncryption(it.dealing, index), it.share
            );
            bits |= uint256(1) << member;
            shareBits[key] = bits;
            if (_popcountReaches(bits, need)) completed++;
            emit Share(member, it.dealer, it.purpose, it.partner, it.share);
        }
        if (completed != 0) completeDealings += completed;
        reputation[msg.sender].validShares += uint64(items.length);
        emit SharesPosted(member, items.length);
    }

    /// @dev whether bits has exactly `need` bits set (the share that completes the dealing)
    function _popcountReaches(uint256 bits, uint256 need) internal pure returns (bool) {
        uint256 c;
        while (bits != 0 && c <= need) {
            bits &= bits - 1;
            c++;
        }
        return c == need;
    }

    function _allowed(uint32 dealer, uint8 purpose, uint32 partner, uint256 key) internal view returns (bool) {
        if (dealingHash[key] == 0 || clients[dealer].flags & F_EXCLUDED != 0) return false;
        if (purpose == PURPOSE_SELF) return partner == 0 && isIncluded(dealer);
        if (purpose == PURPOSE_PAIR) return isIncluded(dealer) != isIncluded(partner);
        return false;
    }

    // ------------------------------------------------------------------ result

    /// @notice The aggregator's result: sha256 of the packed sum, U, total weight.
    /// Accepted once, in the result phase, if `included` is U and every allowed dealing
    /// has t+1 verified shares.
    function postResult(bytes32 digest, uint32[] calldata included, uint64 totalWeight) external {
        _needPhase(RESULT);
        if (msg.sender != aggregator) revert NotAggregator(msg.sender);
        if (resultPosted) revert ResultAlreadyPosted();
        close();
        if (included.length != includedCount) revert IncludedMismatch(included.length);
        uint32 prev;
        for (uint256 i; i < included.length; ++i) {
            uint32 id = included[i];
            if (id <= prev || !isIncluded(id)) revert IncludedMismatch(i);
            prev = id;
        }
        if (completeDealings != allowedDealings) revert NotEnoughShares(completeDealings, allowedDealings);
        resultPosted = true;
        resultDigest = digest;
        emit ResultPosted(digest, included, totalWeight);
    }

    // ------------------------------------------------------------------ internals

    function _needPhase(uint8 want) internal view {
        uint8 p = phase();
        if (p != want) revert WrongPhase(want, p, height());
    }

    /// @dev the party id of msg.sender, which must be registered in `role`
    function _party(uint8 role) internal view returns (uint32) {
        uint256 a = accountOf[msg.sender];
        if (a >> 32 != uint256(role) + 1) revert NotRegistered(msg.sender, role);
        return uint32(a);
    }

    function _send(address to, uint256 amount) internal {
        if (amount == 0) return;
        (bool ok,) = to.call{value: amount}("");
        if (!ok) revert TransferFailed();
    }

    /// @dev Fisher–Yates over 1..n, j = keccak256(DST_GRAPH || seed || uint32 i) mod (i+1)
    /// (secagg.graph._permutation); perm[pos] = client id
    function _permutation() internal view returns (uint32[] memory perm) {
        uint32 n = nClients;
        perm = new uint32[](n);
        for (uint32 i; i < n; ++i) {
            perm[i] = i + 1;
        }
        bytes32 seed = roundSeed();
        bytes memory dst = DST_GRAPH;
        for (uint32 i = n - 1; i > 0; --i) {
            uint256 j = uint256(keccak256(abi.encodePacked(dst, seed, i))) % (uint256(i) + 1);
            (perm[i], perm[j]) = (perm[j], perm[i]);
        }
    }

    /// @dev neighbours of `client` increasing: everyone (complete) or, for regular:K,
    /// perm[pos +- 1 .. K/2] and for odd K perm[pos + n/2] (secagg.graph.compute_mask_graph)
    function _neighbours(uint32 client, uint32[] memory perm) internal view returns (uint32[] memory nb) {
        uint32 n = nClients;
        if (degree == 0) {
            nb = new uint32[](n - 1);
            uint256 k;
            for (uint32 j = 1; j <= n; ++j) {
                if (j != client) nb[k++] = j;
            }
            return nb;
        }
        uint256 pos;
        while (perm[pos] != client) pos++;
        uint256 half = degree / 2;
        nb = new uint32[](degree);
        uint256 cnt;
        for (uint256 s = 1; s <= half; ++s) {
            nb[cnt++] = perm[(pos + s) % n];
            nb[cnt++] = perm[(pos + n - (s % n)) % n];
        }
        if (degree % 2 == 1) nb[cnt++] = perm[(pos + n / 2) % n];
        // insertion sort, then drop duplicates
        for (uint256 a = 1; a < cnt; ++a) {
            uint32 v = nb[a];
            uint256 b = a;
            while (b > 0 && nb[b - 1] > v) {
                nb[b] = nb[b - 1];
                b--;
            }
            nb[b] = v;
        }
        uint256 w;
        for (uint256 a; a < cnt; ++a) {
            if (w == 0 || nb[w - 1] != nb[a]) nb[w++] = nb[a];
        }
        assembly ("memory-safe") {
            mstore(nb, w)
        }
    }
}

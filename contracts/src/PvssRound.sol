// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

import {BN254} from "./BN254.sol";
import {Pvss, ThresholdMismatch, RecipientMismatch, KeyCountMismatch} from "./Pvss.sol";
import {PvssVerifier} from "./PvssVerifier.sol";

/// @notice a post in the wrong phase (phases as in SPEC.md §6.4: 0 register, 1 deal,
/// 2 upload, 3 unmask, 4 result); `height` is block.number - startBlock
error WrongPhase(uint8 expected, uint8 actual, uint256 height);
/// @notice role is neither client (0) nor member (1)
error InvalidRole(uint8 role);
/// @notice the party id is outside 1..limit
error IdOutOfRange(uint8 role, uint32 party, uint32 limit);
/// @notice this (role, party) is already registered
error AlreadyRegistered(uint8 role, uint32 party);
/// @notice open membership: this identity already holds client seat `seat`
error IdentitySeated(address identity, uint32 seat);
/// @notice msg.value is not the stake (client registration) or the bond (challenge)
error WrongValue(uint256 expected, uint256 actual);
/// @notice the signature is not 65 bytes r || s || v with v in {27, 28}, 0 < s <= n/2,
/// or does not recover (SPEC.md §6.9)
error BadSignature(uint8 role, uint32 sender);
/// @notice the post is signed by `signer`, not by the identity the roster gives the seat
error WrongSigner(uint8 role, uint32 sender, address signer);
/// @notice the post's view is not the head when its phase began (SPEC.md §6.11)
error WrongView(bytes32 expected, bytes32 actual);
/// @notice the seat (role, party) is not registered
error NotRegistered(uint8 role, uint32 party);
/// @notice the client already posted its dealings
error AlreadyDealt(uint32 dealer);
/// @notice not every committee member registered: the round cannot proceed
error CommitteeIncomplete(uint32 registered, uint32 committeeSize);
/// @notice the packed committee keys given are not the registered ones
error CommitteeKeysMismatch();
/// @notice this member already revealed its seed contribution
error AlreadyRevealed(uint32 member);
/// @notice dealings need the round seed: `reveals` of `committeeSize` members revealed
error SeedNotFixed(uint32 reveals, uint32 committeeSize);
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
/// @notice |U| < minIncluded: the round aborted, nothing is revealed (SPEC.md §6.12)
error RoundAborted();
/// @notice a confirmation of another head than the one that fixed U
error WrongConfirmation(bytes32 expected, bytes32 actual);
/// @notice this member already confirmed
error AlreadyConfirmed(uint32 member);
/// @notice shares need `quorum` confirmations of the U-fixing head; there are `have`
error NotConfirmed(uint32 have, uint32 quorum);
/// @notice the included set U does not allow a share of this dealing (SPEC.md §6.5)
error ShareNotAllowed(uint32 dealer, uint8 purpose, uint32 partner);
/// @notice this member already posted a share of this dealing
error ShareAlreadyPosted(uint32 dealer, uint8 purpose, uint32 partner);
/// @notice the share's index is not the sender's member id
error ShareIndexMismatch(uint256 index, uint32 member);
/// @notice the dealing bytes given are not the ones accepted (keccak256 differs)
error DealingMismatch(uint32 dealer, uint8 purpose, uint32 partner);
/// @notice a shares post's `refs` are not 9 bytes for each of its `count` dealings (or it has none)
error ShareRefsMismatch(uint256 length, uint256 count);
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
/// @notice withdraw() re-entered
error Reentrant();
/// @notice an Ether transfer failed
error TransferFailed();
/// @notice continueDealings for a dealer with no dealings post open (never posted, or
/// already complete)
error NoOpenDealings(uint32 dealer);
/// @notice continueDealings: more dealing bytes than the post has items left
error TooManyDealings(uint32 dealer, uint256 left);
/// @notice round parameters the contract cannot work with (code: see PvssRoundInit.init)
error BadConfig(uint256 code);
/// @notice importKeys: `task` did not open this round (its rounds(roundId) is another)
error NotTaskRound(address task);
/// @notice importKeys: the round takes no imported keys (open membership or optimistic
/// mode: 0 / 1), or the parties are not strictly increasing in 1..n (2)
error BadImport(uint8 code);
/// @notice importKeys: client seat `party` of the task is another identity than this
/// round's seat, or has no registered key there
error ImportMismatch(uint32 party);

/// @notice what a round reads of the task that opened it (PvssTask)
interface ITaskSeats {
    function rounds(uint64 roundId) external view returns (address);
    function seat(uint8 role, uint32 party) external view returns (address, bool, uint256, uint256);
}

/// @title PvssRoundBase — what a round's implementation (`PvssRound`) and its
/// initializer (`PvssRoundInit`) share: constants, structs, events, the config (read
/// from the clone's immutable arguments) and the storage layout (SPEC.md §7.3 "Clones").
abstract contract PvssRoundBase {
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
    uint8 internal constant TAG_CONFIG = 1;
    uint8 internal constant TAG_REGISTRATION = 2;
    uint8 internal constant TAG_DEALINGS = 3;
    uint8 internal constant TAG_MASKED = 4;
    uint8 internal constant TAG_SHARES = 5;
    uint256 internal constant SHARE_REF_BYTES = 9; // uint32 dealer || uint8 purpose || uint32 partner
    uint8 internal constant TAG_RESULT = 6;
    uint8 internal constant TAG_SEED_REVEAL = 8;
    uint8 internal constant TAG_CONFIRMATION = 9;
    uint8 internal constant TAG_EXCLUSION = 11;
    uint8 internal constant TAG_KEYS_IMPORTED = 13;
    /// @notice the most clients a round contract takes (SPEC.md §7.3 MAX_CHAIN_CLIENTS):
    /// with it every transaction of a round stays under TX_GAS_CAP (§7.5)
    uint32 public constant MAX_CHAIN_CLIENTS = 1024;
    /// @notice the largest K of regular:K (SPEC.md §7.3 MAX_CHAIN_DEGREE): close() is
    /// O(n*K)
    uint32 public constant MAX_CHAIN_DEGREE = 64;
    /// @notice a successful challenger earns stake / REWARD_DIVISOR (SPEC.md §7.7)
    uint256 public constant REWARD_DIVISOR = 2;
    bytes internal constant DST_ROUND_SEED = "pvss-secagg/v1/round-seed";
    bytes internal constant DST_POST = "pvss-secagg/v1/post";
    /// @dev keccak256 of contracts/build/PvssVerifier.json deployedBytecode (build.js
    /// refuses to build when it differs)
    bytes32 public constant VERIFIER_CODEHASH = 0xf2156195bfe81b29a9a6204523f612344aca75f55fab53d92881c512f76b9be5;
    uint256 internal constant SECP256K1_HALF_N = 0x7FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF5D576E7357A4501DDFE92F46681B20A0;

    // client flags
    uint8 internal constant F_REGISTERED = 1;
    uint8 internal constant F_DEALT = 2;
    uint8 internal constant F_EXCLUDED = 4;
    uint8 internal constant F_UPLOADED = 8;
    uint8 internal constant F_WITHDRAWN = 16;

    /// @notice every RoundConfig field (SPEC.md §6.1) but chainId and board, which are
    /// block.chainid and address(this)
    struct Config {
        uint64 roundId;
        uint32 nClients;
        uint16 committeeSize;
        uint16 threshold;
        uint32 degree; // K of regular:K; 0 = complete graph
        uint32 dim;
        uint8 quantBits;
        uint8 bits;
        bytes8 clip; // IEEE-754 binary64, big-endian
        uint32 maxWeight;
        uint32 registerBlocks;
        uint32 dealBlocks;
        uint32 uploadBlocks;
        uint32 unmaskBlocks;
        bool honestMajority;
        address aggregator;
        address[] members; // member seat k = members[k-1]
        address[] clients; // client seat i = clients[i-1], or empty: open membership
        uint32 minIncluded;
        uint32 minNeighbours;
        uint16 confirmQuorum;
        bool optimistic;
        uint32 challengeBlocks; // optimistic: blocks a dealing post can be challenged
        uint256 stake; // optimistic: Ether locked per client registration
        uint256 bond; // optimistic: Ether a challenger locks
        address forfeitTo; // optimistic: where slashed stakes and forfeited bonds go (0: pool)
        bytes32 dpDigest; // keccak256 of the dp record's msgpack bytes (SPEC.md §10.6)
    }

    struct Client {
        address identity; // the seat's identity (roster, or its registrant when open)
        uint8 flags;
        uint64 dealtAt; // height of the dealings post (its last transaction)
        uint32 dealItems; // items of its dealings post (0: none opened)
        uint32 dealDone; // items whose bytes were checked so far
        uint40 dealLast; // (purpose << 32 | partner) of the last checked item
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

    /// @notice one item of a dealings post as signed: (purpose, partner, keccak256 of
    /// the dealing bytes)
    struct DealingHead {
        uint8 purpose;
        uint32 partner;
        bytes32 hash;
    }

    /// @notice one decrypted share, with the accepted dealing it decrypts
    // ------------------------------------------------------------------ events
    /// @notice event 0: the packed config (secagg.posts.config_packed), its post digest
    /// and the aggregator's signature (view 0)
    event RoundCreated(bytes config, bytes32 digest, bytes sig, uint256 startBlock);
    event Registered(uint8 role, uint32 party, address identity, bytes pk, bytes pop, bytes32 postView, bytes sig);
    event SeedRevealed(uint32 indexed member, bytes gamma, bytes proof, bytes32 postView, bytes sig);
    event RoundSeedFixed(bytes32 seed);
    /// @notice one item of a dealings post (emitted in item order, then DealingsPosted)
    event Dealing(uint32 indexed dealer, uint8 purpose, uint32 partner, bytes32 dealingHash, bytes dealing);
    /// @notice a dealings post opened: its signature (the items' bytes follow in Dealing
    /// events, in this transaction or later ones)
    event DealingsOpened(uint32 indexed dealer, uint256 items, bytes32 postView, bytes sig);
    /// @notice the dealings post of `dealer` is complete and accepted (its event in the
    /// hash chain, at this block's height)
    event DealingsPosted(uint32 indexed dealer, uint256 items, bool verified, bytes32 postView);
    event DealerExcluded(uint32 indexed dealer, address indexed challenger, uint8 purpose, uint32 partner, bytes reason);
    event ChallengeRejected(uint32 indexed dealer, address indexed challenger, uint8 purpose, uint32 partner);
    event MaskedInput(uint32 indexed client, bytes32 digest, uint64 size, bytes32 postView, bytes sig);
    event IncludedSet(uint32[] included, uint256 allowedDealings, bool aborted);
    event Confirmed(uint32 indexed member, bytes32 confirmedHead, bytes32 postView, bytes sig);
    event SharesPosted(uint32 indexed member, bytes refs, bytes post, bytes32 postView, bytes sig);
    event ResultPosted(bytes32 digest, uint32[] included, uint64 totalWeight, bytes32 postView, bytes sig);
    /// @notice client seats `parties` registered with the keys they registered on `task`
    /// (`keys`: 64 bytes each, in order), by the aggregator's signed post
    event KeysImported(address task, uint32[] parties, bytes keys, bytes32 postView, bytes sig);

    // ------------------------------------------------------------------ configuration
    /// @dev a round is a clone (SPEC.md §7.3): its code is a proxy followed by
    /// ARGS_BYTES of configuration, which it appends to the calldata of every call it
    /// delegates to PvssRound, so the config is the last ARGS_BYTES of calldata:
    /// uint64 roundId, uint32 nClients, uint16 committeeSize, uint16 threshold, uint32 degree,
    /// uint64 dealStart, uint64 uploadStart, uint64 unmaskStart, uint64 resultStart, uint64
    /// maskedSize, bool optimistic, bool openMembership, uint32 challengeBlocks, uint32
    /// minIncluded, uint32 minNeighbours, uint16 confirmQuorum, address aggregator, address
    /// forfeitTo, uint256 stake, uint256 bond, bytes32 configDigest, uint256 startBlock (packed,
    /// big-endian)
    uint256 internal constant ARGS_BYTES = 244;

    /// @dev `bits` bits of the config at byte `off`
    function _arg(uint256 off, uint256 bits) internal pure returns (uint256 v) {
        assembly ("memory-safe") {
            v := shr(sub(256, bits), calldataload(add(sub(calldatasize(), ARGS_BYTES), off)))
        }
    }

    function roundId() public pure returns (uint64) {
        return uint64(_arg(0, 64));
    }
    function nClients() public pure returns (uint32) {
        return uint32(_arg(8, 32));
    }
    function committeeSize() public pure returns (uint16) {
        return uint16(_arg(12, 16));
    }
    function threshold() public pure returns (uint16) {
        return uint16(_arg(14, 16));
    }
    function degree() public pure returns (uint32) {
        return uint32(_arg(16, 32));
    }
    function dealStart() public pure returns (uint64) {
        return uint64(_arg(20, 64));
    }
    function uploadStart() public pure returns (uint64) {
        return uint64(_arg(28, 64));
    }
    function unmaskStart() public pure returns (uint64) {
        return uint64(_arg(36, 64));
    }
    function resultStart() public pure returns (uint64) {
        return uint64(_arg(44, 64));
    }
    function maskedSize() public pure returns (uint64) {
        return uint64(_arg(52, 64));
    }
    function optimistic() public pure returns (bool) {
        return _arg(60, 8) != 0;
    }
    function openMembership() public pure returns (bool) {
        return _arg(61, 8) != 0;
    }
    function challengeBlocks() public pure returns (uint32) {
        return uint32(_arg(62, 32));
    }
    function minIncluded() public pure returns (uint32) {
        return uint32(_arg(66, 32));
    }
    function minNeighbours() public pure returns (uint32) {
        return uint32(_arg(70, 32));
    }
    function confirmQuorum() public pure returns (uint16) {
        return uint16(_arg(74, 16));
    }
    function aggregator() public pure returns (address) {
        return address(uint160(_arg(76, 160)));
    }
    function forfeitTo() public pure returns (address) {
        return address(uint160(_arg(96, 160)));
    }
    function stake() public pure returns (uint256) {
        return _arg(116, 256);
    }
    function bond() public pure returns (uint256) {
        return _arg(148, 256);
    }
    function configDigest() public pure returns (bytes32) {
        return bytes32(_arg(180, 256));
    }
    function startBlock() public pure returns (uint256) {
        return _arg(212, 256);
    }

    /// @notice optimistic mode: what a successful challenger earns from the dealer's
    /// stake, stake / REWARD_DIVISOR (SPEC.md §7.7); the rest goes to the pool
    function reward() public pure returns (uint256) {
        return stake() / REWARD_DIVISOR;
    }

    // ------------------------------------------------------------------ state
    /// @notice SPEC §6.9 event hash chain: the head of the transcript
    bytes32 public head;
    uint64 public eventCount;
    uint8 public headsRecorded;
    uint32 public registeredMembers;
    uint32 public reveals;
    bool public closed;
    bool public aborted;
    bool public resultPosted;
    uint32 public includedCount;
    uint32 public allowedDealings;
    uint32 public completeDealings;
    uint32 public confirmations;
    bytes32[5] internal phaseHeads;
    mapping(uint32 => address) public memberIdentity;
    mapping(uint32 => Client) public clients;
    /// @notice open membership: the client seat an identity holds (0 = none)
    mapping(address => uint32) public clientSeat;
    mapping(uint32 => uint256[2]) internal clientPk;
    mapping(uint32 => uint256[2]) internal memberPk;
    mapping(uint32 => uint256[2]) internal gammas;
    /// @notice bit k: member k registered / revealed / confirmed
    uint256 public memberBits;
    uint256 public revealedBits;
    uint256 public confirmedBits;
    bytes32 public roundSeed;
    bytes32 public committeeKeysHash;
    /// @notice keccak256 of each accepted dealing, by dealingKey(dealer, purpose, partner)
    mapping(uint256 => bytes32) public dealingHash;
    mapping(uint32 => bytes32) public maskedDigest;
    /// @notice the post digest of a dealer's open (not yet complete) dealings post
    mapping(uint32 => bytes32) internal openDigest;
    mapping(uint256 => uint256) internal includedBits;
    /// @notice bit k set: member k posted a verified share of the dealing
    mapping(uint256 => uint256) public shareBits;
    bytes32 public resultDigest;
    /// @notice by identity
    mapping(address => Reputation) public reputation;
    /// @notice optimistic mode: Ether each account may withdraw() (pull payments)
    mapping(address => uint256) public credit;
    /// @notice optimistic mode without forfeitTo: slashed stakes (less rewards) and
    /// forfeited bonds, shared by the clients that were not excluded when they claim
    /// their stake
    uint256 public pool;
    uint32 public registeredClients;
    uint32 public excludedClients;
    /// @notice closed membership: the contract whose code is the client roster, 0x00 ||
    /// 20 bytes per seat (SPEC.md §7.3 "Roster"); a seat's identity is copied into
    /// `clients` when it registers (0: open membership)
    address public rosterData;
    /// @dev withdraw() is running (re-entrancy lock, transient storage)
    bool transient internal withdrawing;

    /// @dev the signer of a post (SPEC.md §6.9): EIP-191 hash of keccak256(DST_POST ||
    /// uint256 chainId || address board || uint64 round || uint8 role || uint32 sender ||
    /// view || digest), signature r || s || v with v in {27, 28} and low s
    function _recover(uint64 round, uint8 role, uint32 sender, bytes32 postView, bytes32 digest, bytes memory sig)
        internal
        view
        returns (address signer)
    {
        if (sig.length != 65) revert BadSignature(role, sender);
        bytes32 r;
        bytes32 s;
        uint8 v;
        assembly ("memory-safe") {
            r := mload(add(sig, 0x20))
            s := mload(add(sig, 0x40))
            v := byte(0, mload(add(sig, 0x60)))
        }
        if ((v != 27 && v != 28) || uint256(s) == 0 || uint256(s) > SECP256K1_HALF_N) revert BadSignature(role, sender);
        bytes32 sd = keccak256(abi.encodePacked(DST_POST, block.chainid, address(this), round, role, sender, postView, digest));
        signer = ecrecover(keccak256(abi.encodePacked("\x19Ethereum Signed Message:\n32", sd)), v, r, s);
        if (signer == address(0)) revert BadSignature(role, sender);
    }
}

/// @title PvssRound — one secure-aggregation round on-chain (SPEC.md §6.4, §6.9–§6.12).
/// @notice One clone per round (SPEC.md §7.3 "Clones"): its address is the `board` of
/// every context (SPEC.md §3.2), proof of possession and post signature, so nothing replays into another
/// round or contract. Phases follow block height h = block.number - startBlock.
///
/// Trust rules (the same as secagg.boards.memory.MemoryBoard):
/// - The roster is fixed at creation: the aggregator's identity, member seat k's
///   identity, and client seat i's identity (closed membership) or none (open
///   membership: any identity takes one free seat, recorded at its registration). The
///   config the contract enforces is event 0 of the transcript: the constructor packs
///   it exactly as secagg.posts.config_packed and checks the aggregator's signature.
/// - Every post is signed by its seat's identity over (DST_POST, chain, this contract,
///   round, role, sender, view, post digest) (EIP-191, low s; ecrecover). msg.sender
///   is only a relayer: it needs no key of any party, and reputation counts identities.
/// - view = the head when the post's phase began (recorded on the first post or
///   close() of a phase); a post with another view reverts (WrongView).
/// - The contract keeps the event hash chain of SPEC.md §6.9 for every post: `head()`
///   is the transcript head at all times (an on-chain anchor for auditors).
/// - Members reveal Gamma = sk*H_SEED with a DLEQ proof in DEAL; the round seed is
///   keccak256(DST_ROUND_SEED || registration head || Gamma_1..m), fixed by the m-th
///   reveal; no dealing before.
/// - close() fixes U = the minNeighbours-core of the uploaded clients; if
///   |U| < minIncluded the round aborts (no confirmation, share or result accepted).
/// - Members confirm the U-fixing head in UNMASK; shares need confirmQuorum of them.
///
/// Where the contract differs from MemoryBoard:
/// - The graph is computed on-chain (Fisher–Yates over keccak, O(n) per dealings post).
/// - Dealings must come in canonical order (self, then partners increasing).
/// - Shares carry the accepted dealing's bytes (checked against its stored keccak256).
/// - A revert rolls everything back: on-chain fault counters only count what a
///   challenge proves; rejected posts are named by the revert, not recorded.
/// - Optimistic mode: dealings must be posted while their whole challenge window still
///   fits in the deal phase; a successful challenge appends an Exclusion event
///   (secagg.messages.Exclusion: role 2, sender 0, view = the current phase head,
///   digest = keccak256(uint8 11 || uint32 dealer || uint8 purpose || uint32 partner),
///   no signature) to the hash chain.
/// Gas: close() is O(n*K) (regular:K) or O(n^2) (complete); dealings posts O(n + K*m).
contract PvssRound is PvssRoundBase {
    /// @notice the proof checks (a PvssVerifier, shared by every round on a chain: the
    /// constructor checks its code hash, so it is that contract's code and no other)
    PvssVerifier public immutable verifier;

    /// @notice BadConfig(12): `verifier_` is not PvssVerifier's code
    constructor(PvssVerifier verifier_) {
        if (address(verifier_).codehash != VERIFIER_CODEHASH) revert BadConfig(12);
        verifier = verifier_;
    }

    // ------------------------------------------------------------------ views

    /// @notice h = block.number - startBlock
    function height() public view returns (uint256) {
        return block.number - startBlock();
    }

    /// @notice the phase at the current height (SPEC.md §6.4 phase_at)
    function phase() public view returns (uint8) {
        uint256 h = height();
        if (h < dealStart()) return REGISTER;
        if (h < uploadStart()) return DEAL;
        if (h < unmaskStart()) return UPLOAD;
        if (h < resultStart()) return UNMASK;
        return RESULT;
    }

    /// @notice the view a post in phase p must carry: the head when p began (the
    /// current head if p has begun but nothing recorded it yet); 0 for a future phase
    function phaseHead(uint8 p) public view returns (bytes32) {
        if (p < headsRecorded) return phaseHeads[p];
        return p <= phase() ? head : bytes32(0);
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
        return abi.encodePacked(block.chainid, address(this), roundId(), dealer, purpose, partner);
    }

    // ------------------------------------------------------------------ posts: common

    /// @dev records the head for every phase <= p that has none (SPEC.md §6.11)
    function _enter(uint8 p) internal {
        uint8 r = headsRecorded;
        if (r > p) return;
        bytes32 h = head;
        for (; r <= p; ++r) {
            phaseHeads[r] = h;
        }
        headsRecorded = r;
    }

    /// @dev the view must be the head when the current phase began (recording the
    /// phase heads), then the phase must be `p` — MemoryBoard's order: signature, view,
    /// stage
    function _viewAndPhase(uint8 p, bytes32 postView) internal {
        uint8 now_ = phase();
        _enter(now_);
        bytes32 want = phaseHeads[now_];
        if (postView != want) revert WrongView(want, postView);
        if (now_ != p) revert WrongPhase(p, now_, height());
    }

    /// @dev the post must be signed by `identity` (the seat's)
    function _signedBy(address identity, uint8 role, uint32 sender, bytes32 postView, bytes32 digest, bytes calldata sig)
        internal
        view
    {
        address signer = _recover(roundId(), role, sender, postView, digest, sig);
        if (signer != identity) revert WrongSigner(role, sender, signer);
    }

    /// @dev appends an event to the hash chain: keccak256(prev || uint64 seq ||
    /// uint64 height || uint8 role || uint32 sender || view || digest)
    function _append(uint8 role, uint32 sender, bytes32 postView, bytes32 digest) internal {
        uint64 seq = eventCount;
        head = keccak256(abi.encodePacked(head, seq, uint64(height()), role, sender, postView, digest));
        eventCount = seq + 1;
    }

    function _memberSeat(uint32 member) internal view returns (address) {
        if (member == 0 || member > committeeSize()) revert IdOutOfRange(ROLE_MEMBER, member, committeeSize());
        return memberIdentity[member];
    }

    /// @notice client seat `party`'s identity: the registered one, else the roster's
    /// (address(0): a free seat under open membership)
    function clientIdentity(uint32 party) public view returns (address id) {
        id = clients[party].identity;
        address data = rosterData;
        if (id != address(0) || data == address(0) || party == 0 || party > nClients()) return id;
        assembly ("memory-safe") {
            extcodecopy(data, 0, add(1, mul(20, sub(party, 1))), 20)
            id := shr(96, mload(0))
        }
    }

    function _needMember(uint32 member) internal view {
        if ((memberBits >> member) & 1 == 0) revert NotRegistered(ROLE_MEMBER, member);
    }

    /// @dev client seat `client` (in range; under open membership, registered: a free
    /// seat has no identity to sign for it)
    function _clientSeat(uint32 client) internal view returns (Client storage c) {
        if (client == 0 || client > nClients()) revert IdOutOfRange(ROLE_CLIENT, client, nClients());
        c = clients[client];
        if (c.identity == address(0)) revert NotRegistered(ROLE_CLIENT, client);
    }

    function _needClient(Client storage c, uint32 client) internal view {
        if (c.flags & F_REGISTERED == 0) revert NotRegistered(ROLE_CLIENT, client);
    }

    // ------------------------------------------------------------------ registration

    /// @notice Registers seat (`role`, `party`) with key `pk` and a proof of possession
    /// for (chain, this contract, round, role * 2^24 + party), signed by the seat's
    /// identity (roster; under open membership any identity without a seat). In
    /// optimistic mode a client registration carries `stake` Ether (from the relayer;
    /// withdrawStake pays it back to the identity).
    function register(
        uint8 role,
        uint32 party,
        bytes calldata pk,
        bytes calldata pop,
        bytes32 postView,
        bytes calldata sig
    ) external payable {
        if (role > ROLE_MEMBER) revert InvalidRole(role);
        uint32 limit = role == ROLE_CLIENT ? nClients() : committeeSize();
        if (party == 0 || party > limit) revert IdOutOfRange(role, party, limit);
        bytes32 digest = keccak256(abi.encodePacked(TAG_REGISTRATION, role, party, pk, pop));
        address signer = _recover(roundId(), role, party, postView, digest, sig);
        Client storage c = clients[party];
        address seat = role == ROLE_CLIENT ? clientIdentity(party) : memberIdentity[party];
        if (seat != address(0) && seat != signer) revert WrongSigner(role, party, signer);
        _viewAndPhase(REGISTER, postView);
        uint256 want;
        if (role == ROLE_CLIENT) {
            if (c.flags & F_REGISTERED != 0) revert AlreadyRegistered(role, party);
            if (openMembership()) {
                uint32 held = clientSeat[signer];
                if (held != 0) revert IdentitySeated(signer, held);
                clientSeat[signer] = party;
            }
            c.identity = signer; // the roster's (closed) or the registrant (open)
            want = optimistic() ? stake() : 0;
        } else if ((memberBits >> party) & 1 != 0) {
            revert AlreadyRegistered(role, party);
        }
        if (msg.value != want) revert WrongValue(want, msg.value);
        verifier.verifyPop(block.chainid, address(this), roundId(), (uint32(role) << 24) | party, pk, pop);
        uint256 x = uint256(bytes32(pk[0:32]));
        uint256 y = uint256(bytes32(pk[32:64]));
        if (role == ROLE_CLIENT) {
            clients[party].flags = F_REGISTERED;
            clientPk[party] = [x, y];
            registeredClients += 1;
        } else {
            memberBits |= uint256(1) << party;
            memberPk[party] = [x, y];
            registeredMembers += 1;
        }
        _append(role, party, postView, digest);
        emit Registered(role, party, signer, pk, pop, postView, sig);
    }

    /// @notice The aggregator registers client seats `parties` (strictly increasing)
    /// with the keys their identities registered once on `task` (SPEC.md §7.8
    /// "Imported keys"), in REGISTER, instead of a Registration post per client: `task`
    /// must be the PvssTask that opened this round (rounds(roundId) is this contract), each
    /// party's task seat the same identity as its seat here, with a key. The post digest
    /// is keccak256(uint8 13 || address task || uint32 N || N x uint32 party || N x 64-byte
    /// key), the keys as read from the task, so the signature covers them. Closed
    /// membership, full mode only (an optimistic client stakes at its own registration).
    function importKeys(address task, uint32[] calldata parties, bytes32 postView, bytes calldata sig) external {
        uint256 n = parties.length;
        bytes memory keys = new bytes(64 * n);
        bool fits = true; // every seat's identity and key as the rule below needs
        uint32 bad;
        for (uint256 i; i < n; ++i) {
            (address id, bool reg, uint256 x, uint256 y) = ITaskSeats(task).seat(ROLE_CLIENT, parties[i]);
            if (fits && (!reg || id != clientIdentity(parties[i]))) (fits, bad) = (false, parties[i]);
            assembly ("memory-safe") {
                let at := add(add(keys, 0x20), mul(i, 64))
                mstore(at, x)
                mstore(add(at, 0x20), y)
            }
        }
        bytes32 digest = keccak256(abi.encodePacked(TAG_KEYS_IMPORTED, task, uint32(n), _packU32(parties), keys));
        _signedBy(aggregator(), ROLE_AGGREGATOR, 0, postView, digest, sig);
        _viewAndPhase(REGISTER, postView);
        if (openMembership()) revert BadImport(0);
        if (optimistic()) revert BadImport(1);
        if (ITaskSeats(task).rounds(roundId()) != address(this)) revert NotTaskRound(task);
        uint32 prev;
        for (uint256 i; i < n; ++i) {
            uint32 p = parties[i];
            if (p <= prev || p > nClients()) revert BadImport(2);
            prev = p;
            if (clients[p].flags & F_REGISTERED != 0) revert AlreadyRegistered(ROLE_CLIENT, p);
        }
        if (n == 0) revert BadImport(2);
        if (!fits) revert ImportMismatch(bad);
        for (uint256 i; i < n; ++i) {
            uint32 p = parties[i];
            uint256 x;
            uint256 y;
            assembly ("memory-safe") {
                let at := add(add(keys, 0x20), mul(i, 64))
                x := mload(at)
                y := mload(add(at, 0x20))
            }
            (clients[p].identity, clients[p].flags) = (clientIdentity(p), F_REGISTERED);
            clientPk[p] = [x, y];
        }
        registeredClients += uint32(n);
        _append(ROLE_AGGREGATOR, 0, postView, digest);
        emit KeysImported(task, parties, keys, postView, sig);
    }

    // ------------------------------------------------------------------ seed reveals

    /// @notice Member `member`'s seed reveal (SPEC.md §6.10) in DEAL: Gamma = sk*H_SEED
    /// and a DLEQ proof against its registered key. The m-th reveal fixes the round
    /// seed keccak256(DST_ROUND_SEED || registration head || Gamma_1 || ... || Gamma_m).
    function revealSeed(uint32 member, bytes calldata gamma, bytes calldata proof, bytes32 postView, bytes calldata sig)
        external
    {
        address seat = _memberSeat(member);
        bytes32 digest = keccak256(abi.encodePacked(TAG_SEED_REVEAL, member, gamma, proof));
        _signedBy(seat, ROLE_MEMBER, member, postView, digest, sig);
        _viewAndPhase(DEAL, postView);
        _needMember(member);
        if ((revealedBits >> member) & 1 != 0) revert AlreadyRevealed(member);
        uint32 m = committeeSize();
        if (registeredMembers != m) revert CommitteeIncomplete(registeredMembers, m);
        verifier.verifySeedReveal(
            block.chainid,
            address(this),
            roundId(),
            member,
            abi.encodePacked(memberPk[member][0], memberPk[member][1]),
            gamma,
            proof
        );
        gammas[member] = [uint256(bytes32(gamma[0:32])), uint256(bytes32(gamma[32:64]))];
        revealedBits |= uint256(1) << member;
        uint32 count = reveals + 1;
        reveals = count;
        _append(ROLE_MEMBER, member, postView, digest);
        emit SeedRevealed(member, gamma, proof, postView, sig);
        if (count == m) {
            bytes memory buf = abi.encodePacked(DST_ROUND_SEED, phaseHeads[DEAL]);
            for (uint32 k = 1; k <= m; ++k) {
                buf = bytes.concat(buf, abi.encodePacked(gammas[k][0], gammas[k][1]));
            }
            bytes32 seed = keccak256(buf);
            roundSeed = seed;
            emit RoundSeedFixed(seed);
        }
    }

    // ------------------------------------------------------------------ dealings

    /// @notice Client `dealer`'s dealings post, in one transaction or several (SPEC.md
    /// §7.3 "Split posts"). `heads` are ALL its items as signed: the self dealing, then
    /// one pair dealing per registered neighbour j > dealer in increasing j (recipient
    /// j), each with keccak256 of its bytes; the signature covers the post digest
    /// computed from them (SPEC.md §6.9, tag 3), so one signature covers the whole post.
    /// `dealings` are the bytes of the first items (any prefix, possibly all); the rest
    /// follow in continueDealings. `committeePks` are the m member keys packed (member 1
    /// first), checked against the registered ones. Full mode verifies every dealing
    /// (reverting with the Pvss error); optimistic mode checks its header. The post is
    /// accepted — appended to the hash chain, the dealer counted as dealt, the challenge
    /// window opened — in the transaction that checks its last item.
    function postDealings(
        uint32 dealer,
        DealingHead[] calldata heads,
        DealingIn[] calldata items,
        bytes calldata committeePks,
        bytes32 postView,
        bytes calldata sig
    ) external {
        Client storage c = _clientSeat(dealer);
        bytes32 digest;
        {
            bytes memory packed = abi.encodePacked(TAG_DEALINGS, dealer, uint32(heads.length));
            for (uint256 i; i < heads.length; ++i) {
                packed = bytes.concat(packed, abi.encodePacked(heads[i].purpose, heads[i].partner, heads[i].hash));
            }
            digest = keccak256(packed);
            _signedBy(c.identity, ROLE_CLIENT, dealer, postView, digest, sig);
            _viewAndPhase(DEAL, postView);
        }
        _needClient(c, dealer);
        if (c.flags & F_DEALT != 0 || c.dealItems != 0) revert AlreadyDealt(dealer);
        if (roundSeed == 0) revert SeedNotFixed(reveals, committeeSize());
        uint32[] memory partners = verifier.graphNeighbours(roundSeed, nClients(), degree(), dealer);
        uint256 want = 1;
        for (uint256 i; i < partners.length; ++i) {
            if (partners[i] > dealer && clients[partners[i]].flags & F_REGISTERED != 0) partners[want++ - 1] = partners[i];
        }
        if (heads.length != want) revert WrongDealingSet(dealer, heads.length < want ? heads.length : want, want);
        for (uint256 i; i < heads.length; ++i) {
            DealingHead calldata hd = heads[i];
            if (i == 0 ? (hd.purpose != PURPOSE_SELF || hd.partner != 0) : (hd.purpose != PURPOSE_PAIR || hd.partner != partners[i - 1])) {
                revert WrongDealingSet(dealer, i, want);
            }
            dealingHash[dealingKey(dealer, hd.purpose, hd.partner)] = hd.hash;
        }
        c.dealItems = uint32(want);
        openDigest[dealer] = digest;
        emit DealingsOpened(dealer, want, postView, sig);
        _checkItems(c, dealer, items, committeePks);
    }

    /// @notice The next items of `dealer`'s open dealings post (after postDealings), in
    /// the post's order; anyone may send them: each must hash to its signed head.
    function continueDealings(uint32 dealer, DealingIn[] calldata items, bytes calldata committeePks) external {
        uint8 p = phase();
        if (p != DEAL) revert WrongPhase(DEAL, p, height());
        if (dealer == 0 || dealer > nClients()) revert IdOutOfRange(ROLE_CLIENT, dealer, nClients());
        Client storage c = clients[dealer];
        if (c.dealItems == 0 || c.flags & F_DEALT != 0) revert NoOpenDealings(dealer);
        _checkItems(c, dealer, items, committeePks);
    }

    /// @dev checks the next items of an open post: strictly after the last checked one
    /// in (purpose, partner) order, bytes hashing to the signed head; full mode verifies
    /// them, optimistic mode checks the header. Completes the post at its last item.
    function _checkItems(Client storage c, uint32 dealer, DealingIn[] calldata items, bytes calldata committeePks)
        internal
    {
        uint256 done = c.dealDone;
        uint256 total = c.dealItems;
        if (items.length > total - done) revert TooManyDealings(dealer, total - done);
        if (items.length != 0) _checkCommittee(committeePks);
        uint40 last = c.dealLast;
        for (uint256 i; i < items.length; ++i) {
            DealingIn calldata it = items[i];
            uint40 order = (uint40(it.purpose) << 32) | it.partner;
            uint256 key = dealingKey(dealer, it.purpose, it.partner);
            bytes32 hsh = keccak256(it.dealing);
            if ((done + i != 0 && order <= last) || dealingHash[key] != hsh || hsh == 0) {
                revert WrongDealingSet(dealer, done + i, total);
            }
            last = order;
            if (optimistic()) {
                _checkHeader(it.dealing, it.purpose == PURPOSE_PAIR);
            } else {
                bytes memory rpk;
                if (it.purpose == PURPOSE_PAIR) rpk = abi.encodePacked(clientPk[it.partner][0], clientPk[it.partner][1]);
                verifier.verifyDealing(context(dealer, it.purpose, it.partner), threshold(), committeePks, rpk, it.dealing);
            }
            emit Dealing(dealer, it.purpose, it.partner, hsh, it.dealing);
        }
        done += items.length;
        c.dealDone = uint32(done);
        c.dealLast = last;
        if (done != total) return;
        uint256 h = height();
        if (optimistic() && h + challengeBlocks() >= uploadStart()) {
            revert DealingWindowClosed(uploadStart() - challengeBlocks() - 1);
        }
        bytes32 digest = openDigest[dealer];
        delete openDigest[dealer];
        _append(ROLE_CLIENT, dealer, phaseHeads[DEAL], digest);
        c.flags |= F_DEALT;
        c.dealtAt = uint64(h);
        reputation[c.identity].validDealings += uint64(total);
        emit DealingsPosted(dealer, total, !optimistic(), phaseHeads[DEAL]);
    }

    /// @dev optimistic mode: the header must fit the round (t, N, recipient flag)
    function _checkHeader(bytes calldata dealing, bool pair) internal pure {
        (uint256 t, bool hasRecipient, uint256 n) = Pvss.dealingHeader(dealing);
        if (t != threshold()) revert ThresholdMismatch(threshold(), t);
        if (hasRecipient != pair) revert RecipientMismatch(hasRecipient);
        uint256 m = hasRecipient ? n - 1 : n;
        if (m != committeeSize()) revert KeyCountMismatch(committeeSize(), m);
    }

    function _checkCommittee(bytes calldata committeePks) internal {
        bytes32 want = committeeKeysHash;
        if (want == 0) {
            bytes memory packed;
            for (uint32 k = 1; k <= committeeSize(); ++k) {
                packed = abi.encodePacked(packed, memberPk[k][0], memberPk[k][1]);
            }
            want = keccak256(packed);
            committeeKeysHash = want;
        }
        if (keccak256(committeePks) != want) revert CommitteeKeysMismatch();
    }

    /// @notice Optimistic mode: dispute dealing (dealer, purpose, partner) within its
    /// window, giving its bytes (must hash to the stored value) and the committee keys,
    /// with `bond` Ether. Invalid: the dealer is excluded (all its dealings), an
    /// Exclusion event enters the hash chain, the challenger is credited `reward` and
    /// its bond back, the rest of the stake is forfeited (to forfeitTo, or the pool), its
    /// identity's fault counter grows. Valid: the bond is forfeited the same way.
    function challenge(
        uint32 dealer,
        uint8 purpose,
        uint32 partner,
        bytes calldata dealing,
        bytes calldata committeePks
    ) external payable {
        if (!optimistic()) revert NotOptimistic();
        if (msg.value != bond()) revert WrongValue(bond(), msg.value);
        Client storage c = clients[dealer];
        uint256 key = dealingKey(dealer, purpose, partner);
        if (c.flags & (F_DEALT | F_EXCLUDED) != F_DEALT || dealingHash[key] == 0) {
            revert NothingToChallenge(dealer, purpose, partner);
        }
        uint256 last = uint256(c.dealtAt) + challengeBlocks();
        if (height() > last) revert ChallengeWindowClosed(last);
        if (keccak256(dealing) != dealingHash[key]) revert DealingMismatch(dealer, purpose, partner);
        _checkCommittee(committeePks);
        bytes memory rpk;
        if (purpose == PURPOSE_PAIR) rpk = abi.encodePacked(clientPk[partner][0], clientPk[partner][1]);
        try verifier.verifyDealing(context(dealer, purpose, partner), threshold(), committeePks, rpk, dealing) returns (
            uint256
        ) {
            _forfeit(bond()); // a false accusation forfeits the bond
            emit ChallengeRejected(dealer, msg.sender, purpose, partner);
        } catch (bytes memory reason) {
            bytes4 sel = reason.length >= 4 ? bytes4(reason) : bytes4(0);
            if (reason.length < 4 || sel == BN254.EcMulFailed.selector || sel == BN254.EcAddFailed.selector) {
                assembly ("memory-safe") {
                    revert(add(reason, 0x20), mload(reason)) // out of gas is not "invalid"
                }
            }
            c.flags |= F_EXCLUDED;
            excludedClients += 1;
            // the stake is never returned: the challenger earns the reward and its bond
            // back, the rest of the stake goes to the pool (SPEC.md §7.7)
            credit[msg.sender] += reward() + bond();
            _forfeit(stake() - reward());
            Reputation storage rep = reputation[c.identity];
            rep.faults += 1;
            rep.validDealings = 0;
            uint8 p = phase();
            _enter(p);
            _append(
                ROLE_AGGREGATOR, 0, phaseHeads[p], keccak256(abi.encodePacked(TAG_EXCLUSION, dealer, purpose, partner))
            );
            emit DealerExcluded(dealer, msg.sender, purpose, partner, reason);
        }
    }

    /// @notice After the round, a client that was not excluded is credited its stake
    /// and an equal share of the pool, to its identity (anyone may call; withdraw pays).
    function withdrawStake(uint32 client) external {
        if (phase() != RESULT) revert WrongPhase(RESULT, phase(), height());
        Client storage c = _clientSeat(client);
        _needClient(c, client);
        if (stake() == 0 || c.flags & (F_EXCLUDED | F_WITHDRAWN) != 0) revert NothingToWithdraw();
        c.flags |= F_WITHDRAWN;
        credit[c.identity] += stake() + pool / (registeredClients - excludedClients);
    }

    /// @notice Pays msg.sender its credit (checks-effects-interactions and a transient
    /// lock: a re-entrant call reverts).
    function withdraw() external {
        if (withdrawing) revert Reentrant();
        withdrawing = true;
        uint256 amount = credit[msg.sender];
        if (amount == 0) revert NothingToWithdraw();
        credit[msg.sender] = 0;
        _send(msg.sender, amount);
        withdrawing = false;
    }

    // ------------------------------------------------------------------ upload

    /// @notice sha256 and size of client `client`'s packed masked vector (once per
    /// client, only with accepted dealings).
    function postMaskedInput(uint32 client, bytes32 digest, uint64 size, bytes32 postView, bytes calldata sig)
        external
    {
        Client storage c = _clientSeat(client);
        bytes32 pd = keccak256(abi.encodePacked(TAG_MASKED, client, digest, size));
        _signedBy(c.identity, ROLE_CLIENT, client, postView, pd, sig);
        _viewAndPhase(UPLOAD, postView);
        uint8 flags = c.flags;
        if (flags & F_DEALT == 0 || flags & F_EXCLUDED != 0) revert NoAcceptedDealings(client);
        if (flags & F_UPLOADED != 0) revert AlreadyUploaded(client);
        if (size != maskedSize()) revert WrongSize(maskedSize(), size);
        c.flags = flags | F_UPLOADED;
        maskedDigest[client] = digest;
        _append(ROLE_CLIENT, client, postView, pd);
        emit MaskedInput(client, digest, size, postView, sig);
    }

    // ------------------------------------------------------------------ included set

    /// @notice Fixes U once the upload phase is over (anyone may call; confirmations,
    /// shares and the result call it too): the minNeighbours-core of the uploaded
    /// clients (peeling with a queue, O(n*K)); the round aborts if |U| < minIncluded.
    function close() public {
        if (closed) return;
        uint8 p = phase();
        if (p < UNMASK) revert WrongPhase(UNMASK, p, height());
        _enter(p);
        uint32 n = nClients();
        bytes memory flags = new bytes(n + 1);
        for (uint32 i = 1; i <= n; ++i) {
            flags[i] = bytes1(clients[i].flags);
        }
        (uint256[] memory inU, uint32 count, uint32 allowed) =
            verifier.includedSet(roundSeed, n, degree(), minNeighbours(), flags);
        bool abort = count < minIncluded();
        if (abort) (count, allowed) = (0, 0);
        uint32[] memory list = new uint32[](count);
        if (!abort) {
            uint256 pos;
            for (uint256 w; w < inU.length; ++w) {
                uint256 word = inU[w];
                if (word == 0) continue;
                includedBits[w] = word;
                for (uint256 b; b < 256; ++b) {
                    if ((word >> b) & 1 != 0) list[pos++] = uint32((w << 8) | b);
                }
            }
        }
        includedCount = count;
        allowedDealings = allowed;
        aborted = abort;
        closed = true;
        emit IncludedSet(list, allowed, abort);
    }

    // ------------------------------------------------------------------ confirmation

    /// @notice Member `member` confirms `confirmedHead`, which must be the head that
    /// fixed U (= the UNMASK phase head, also the view) (SPEC.md §6.11); once per member.
    function confirm(uint32 member, bytes32 confirmedHead, bytes32 postView, bytes calldata sig) external {
        address seat = _memberSeat(member);
        bytes32 digest = keccak256(abi.encodePacked(TAG_CONFIRMATION, member, confirmedHead));
        _signedBy(seat, ROLE_MEMBER, member, postView, digest, sig);
        _viewAndPhase(UNMASK, postView);
        close();
        _needMember(member);
        if ((confirmedBits >> member) & 1 != 0) revert AlreadyConfirmed(member);
        if (aborted) revert RoundAborted();
        if (confirmedHead != phaseHeads[UNMASK]) revert WrongConfirmation(phaseHeads[UNMASK], confirmedHead);
        confirmedBits |= uint256(1) << member;
        confirmations += 1;
        _append(ROLE_MEMBER, member, postView, digest);
        emit Confirmed(member, confirmedHead, postView, sig);
    }

    // ------------------------------------------------------------------ shares

    /// @notice Member `member`'s share post (SPEC.md §4.5, §7.3): `refs` = N x (uint32
    /// dealer || uint8 purpose || uint32 partner), `post` = uint16 k || uint16 N ||
    /// N x S_i || A1 || A2 || z (one aggregated DLEQ for all N), `dealings[i]` the
    /// accepted dealing of ref i (s_hat_k is cut from it). Only for dealings U allows
    /// (SPEC.md §6.5), only once confirmQuorum members confirmed the U-fixing head; the
    /// whole post is refused if its proof fails (`SharePostFailed(member)`).
    function postShares(
        uint32 member,
        bytes calldata refs,
        bytes[] calldata dealings,
        bytes calldata post,
        bytes32 postView,
        bytes calldata sig
    ) external {
        address seat = _memberSeat(member);
        uint256 n = dealings.length;
        {
            bytes32 digest = keccak256(abi.encodePacked(TAG_SHARES, member, uint32(n), refs, post));
            _signedBy(seat, ROLE_MEMBER, member, postView, digest, sig);
            _viewAndPhase(UNMASK, postView);
            _append(ROLE_MEMBER, member, postView, digest);
        }
        close();
        _needMember(member);
        if (aborted) revert RoundAborted();
        if (confirmations < confirmQuorum()) revert NotConfirmed(confirmations, confirmQuorum());
        if (refs.length != SHARE_REF_BYTES * n || n == 0) revert ShareRefsMismatch(refs.length, n);
        if (post.length < 4 || uint16(bytes2(post[0:2])) != member) {
            revert ShareIndexMismatch(post.length < 2 ? 0 : uint16(bytes2(post[0:2])), member);
        }
        bytes memory contexts = new bytes(69 * n);
        bytes memory sHats = new bytes(64 * n);
        uint256 need = uint256(threshold()) + 1;
        uint32 completed;
        for (uint256 i; i < n; ++i) {
            uint256 o = SHARE_REF_BYTES * i;
            uint32 dealer = uint32(bytes4(refs[o:o + 4]));
            uint8 purpose = uint8(refs[o + 4]);
            uint32 partner = uint32(bytes4(refs[o + 5:o + 9]));
            uint256 key = dealingKey(dealer, purpose, partner);
            if (!_allowed(dealer, purpose, partner, key)) revert ShareNotAllowed(dealer, purpose, partner);
            uint256 bits = shareBits[key];
            if ((bits >> member) & 1 != 0) revert ShareAlreadyPosted(dealer, purpose, partner);
            if (keccak256(dealings[i]) != dealingHash[key]) revert DealingMismatch(dealer, purpose, partner);
            bytes memory ctx = context(dealer, purpose, partner);
            bytes memory sHat = Pvss.shareEncryption(dealings[i], member);
            assembly ("memory-safe") {
                mcopy(add(add(contexts, 0x20), mul(i, 69)), add(ctx, 0x20), 69)
                mcopy(add(add(sHats, 0x20), mul(i, 64)), add(sHat, 0x20), 64)
            }
            bits |= uint256(1) << member;
            shareBits[key] = bits;
            if (_popcountReaches(bits, need)) completed++;
        }
        verifier.verifySharePost(abi.encodePacked(memberPk[member][0], memberPk[member][1]), contexts, sHats, post);
        if (completed != 0) completeDealings += completed;
        reputation[memberIdentity[member]].validShares += uint64(n);
        emit SharesPosted(member, refs, post, postView, sig);
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
        if (dealingHash[key] == 0 || clients[dealer].flags & (F_DEALT | F_EXCLUDED) != F_DEALT) return false;
        if (purpose == PURPOSE_SELF) return partner == 0 && isIncluded(dealer);
        if (purpose == PURPOSE_PAIR) return isIncluded(dealer) != isIncluded(partner);
        return false;
    }

    // ------------------------------------------------------------------ result

    /// @notice The aggregator's result: sha256 of the packed sum, U, total weight,
    /// signed by the aggregator identity. Accepted once, in the result phase, if the
    /// round did not abort, `included` is U and every allowed dealing has t+1 verified
    /// shares.
    function postResult(bytes32 digest, uint32[] calldata included, uint64 totalWeight, bytes32 postView, bytes calldata sig)
        external
    {
        bytes32 pd = keccak256(
            abi.encodePacked(TAG_RESULT, digest, uint32(included.length), _packU32(included), totalWeight)
        );
        _signedBy(aggregator(), ROLE_AGGREGATOR, 0, postView, pd, sig);
        _viewAndPhase(RESULT, postView);
        close();
        if (resultPosted) revert ResultAlreadyPosted();
        if (aborted) revert RoundAborted();
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
        _append(ROLE_AGGREGATOR, 0, postView, pd);
        emit ResultPosted(digest, included, totalWeight, postView, sig);
    }

    /// @dev uint32 each, packed (abi.encodePacked pads array elements to 32 bytes)
    function _packU32(uint32[] calldata a) internal pure returns (bytes memory out) {
        out = new bytes(a.length * 4 + 28);
        assembly ("memory-safe") {
            let dst := add(out, 0x20)
            for { let i := 0 } lt(i, a.length) { i := add(i, 1) } {
                mstore(add(dst, mul(i, 4)), shl(224, calldataload(add(a.offset, mul(i, 0x20)))))
            }
            mstore(out, mul(a.length, 4))
        }
    }

    // ------------------------------------------------------------------ internals

    /// @dev a slashed stake (less the reward) or a forfeited bond: to forfeitTo's credit
    /// (a task pulls it with withdraw(), SPEC.md §7.9), or to this round's pool
    function _forfeit(uint256 amount) internal {
        if (forfeitTo() == address(0)) pool += amount;
        else credit[forfeitTo()] += amount;
    }

    function _send(address to, uint256 amount) internal {
        if (amount == 0) return;
        (bool ok,) = to.call{value: amount}("");
        if (!ok) revert TransferFailed();
    }
}

// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

import {PvssVerifier} from "./PvssVerifier.sol";
import {PvssRound} from "./PvssRound.sol";

/// @notice only the task owner (the aggregator identity) may call this
error NotOwner(address caller);
/// @notice the roster is sealed: no seat can be added any more
error RosterSealed();
/// @notice the roster is not sealed yet: no round can be opened
error RosterOpen();
/// @notice the identity is zero or already holds a seat of this role
error BadSeat(uint8 role, address identity);
/// @notice role is neither client (0) nor member (1)
error TaskInvalidRole(uint8 role);
/// @notice the party id is outside 1..limit
error TaskIdOutOfRange(uint8 role, uint32 party, uint32 limit);
/// @notice this seat already registered its key with the task (once per task)
error TaskAlreadyRegistered(uint8 role, uint32 party);
/// @notice the signature is not 65 bytes r || s || v, v in {27, 28}, 0 < s <= n/2
error TaskBadSignature(uint8 role, uint32 party);
/// @notice the registration is signed by `signer`, not by the seat's identity
error TaskWrongSigner(uint8 role, uint32 party, address signer);
/// @notice the round contract's round id is not the task's next one
error WrongRoundId(uint64 expected, uint64 actual);
/// @notice the round contract's aggregator is not the task owner
error WrongAggregator(address aggregator);
/// @notice the task's constructor arguments (0 committee size, 1 verifier code)
error TaskBadConfig(uint256 code);
/// @notice fund() without Ether
error NothingToFund();
/// @notice no round with this id was opened by this task
error UnknownRound(uint64 roundId);
/// @notice the round's result is not posted (yet, or ever: aborted): nothing to settle
error ResultNotPosted(uint64 roundId, address round);
/// @notice every payout of this round was credited already (settle is once per round)
error AlreadySettled(uint64 roundId);
/// @notice settle with a page of 0 seats
error EmptyPage(uint64 roundId);
/// @notice `account` has no task credit to withdraw
error NoTaskCredit(address account);
/// @notice withdraw() re-entered
error TaskReentrant();
/// @notice the Ether transfer to `account` failed
error TaskTransferFailed(address account);
/// @notice an optimistic round must forfeit its slashed stakes to this task (SPEC.md §7.9)
error WrongForfeitTo(address forfeitTo);
/// @notice round `roundId` owes this task nothing (no stake slashed or bond forfeited yet)
error NothingToCollect(uint64 roundId);
/// @notice Ether arrived other than from the round collect() is pulling from
error UnexpectedPayment(address from);

/// @title PvssTask — the roster and the long-lived PVSS keys of one federation / FL task
/// (SPEC.md §7.8).
/// @notice Created once by the task owner (the aggregator identity). The roster lives in
/// storage, added in batches (`addMembers`, `addClients`) until `sealRoster`, so no
/// initcode cap bounds it. Each seat registers its PVSS key ONCE per task: a proof of
/// possession for (chain, this task, round TASK_ROUND = 0, role * 2^24 + party) and a
/// signature by the seat's identity over (DST_POST, chain, this task, round 0, role,
/// party, view 0, registration post digest) — the same signing digest as a round post
/// (SPEC.md §6.9) with the task as board and round 0, which no round uses (round ids
/// start at 1). Rounds are opened by `openRound`: the owner names a round contract for
/// the next round id; round ids strictly increase and every round keeps its own
/// contract address, so every round context (§3.2) differs from every other.
contract PvssTask {
    uint8 internal constant ROLE_CLIENT = 0;
    uint8 internal constant ROLE_MEMBER = 1;
    uint8 internal constant TAG_REGISTRATION = 2;
    /// @notice the round id of the task's own context (registrations); rounds start at 1
    uint64 public constant TASK_ROUND = 0;
    /// @notice a committee's member bitmaps in PvssRound are 256 bits wide
    uint16 public constant MAX_COMMITTEE = 255;
    bytes internal constant DST_POST = "pvss-secagg/v1/post";
    /// @dev PvssRound.VERIFIER_CODEHASH (build.js refuses to build when either differs
    /// from PvssVerifier's deployed code)
    bytes32 public constant VERIFIER_CODEHASH = 0xf2156195bfe81b29a9a6204523f612344aca75f55fab53d92881c512f76b9be5;
    uint256 internal constant SECP256K1_HALF_N = 0x7FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF5D576E7357A4501DDFE92F46681B20A0;

    struct Seat {
        address identity;
        bool registered;
        uint256[2] pk;
    }

    event SeatAdded(uint8 role, uint32 party, address identity);
    event RosterSealedAt(uint32 members, uint32 clients, bytes32 rosterHash);
    event TaskRegistered(uint8 role, uint32 party, address identity, bytes pk, bytes pop, bytes sig);
    event RoundOpened(uint64 indexed roundId, address round, bytes32 configDigest);
    /// @notice rewards (wei) for rounds opened from `fromRound` on
    event RewardsSet(uint64 fromRound, uint256 perClient, uint256 perShare);
    event Funded(address indexed from, uint256 amount);
    /// @notice settlement of a round began: `owed` at the round's rewards, `reserved` =
    /// min(owed, pool) set aside (credits are owed * reserved / owed pro rata)
    event SettleStarted(uint64 indexed roundId, uint256 owed, uint256 reserved);
    /// @notice seat (role, party) of the round earned `amount` for `units` (1 for an
    /// included client, its valid shares for a member)
    event Credited(uint64 indexed roundId, uint8 role, uint32 party, address indexed identity, uint64 units, uint256 amount);
    /// @notice settlement done: `paid` credited, `refunded` = reserved - paid back to the pool
    event Settled(uint64 indexed roundId, uint256 paid, uint256 refunded);
    event Withdrawn(address indexed account, uint256 amount);
    /// @notice `amount` wei of round `roundId`'s slashed stakes and forfeited bonds
    /// entered the pool
    event Collected(uint64 indexed roundId, uint256 amount);

    address public immutable owner;
    uint16 public immutable committeeSize;
    PvssVerifier public immutable verifier;

    bool public isSealed;
    uint32 public memberCount;
    uint32 public clientCount;
    uint32 public registeredMembers;
    uint32 public registeredClients;
    uint64 public lastRound;
    /// @notice hash chain over the seats in the order added: h_0 = 0, h = keccak256(h ||
    /// uint8 role || uint32 party || address identity); final once sealed
    bytes32 public rosterHash;
    mapping(uint32 => Seat) internal members;
    mapping(uint32 => Seat) internal clients;
    /// @notice the seat an identity holds, by role (0 = none)
    mapping(uint8 => mapping(address => uint32)) public seatOf;
    mapping(uint64 => address) public rounds;

    /// @notice one round's payout: its rewards (fixed when it was opened) and progress
    struct Payout {
        uint128 perClient;
        uint128 perShare;
        uint32 cursor; // seats done: members 1..m are positions 1..m, client i is m + i
        bool started;
        bool done;
        uint256 owed;
        uint256 reserved;
        uint256 paid;
    }

    /// @notice wei per included client and per valid share for rounds opened from now on
    uint128 public rewardPerClient;
    uint128 public rewardPerShare;
    /// @notice wei ever sent to fund()
    uint256 public funded;
    /// @notice wei neither reserved for a settlement nor credited (what settle may use)
    uint256 public pool;
    /// @notice wei ever collected from rounds: slashed stakes and forfeited bonds
    uint256 public slashed;
    /// @notice wei ever credited by settle (never more than funded + slashed)
    uint256 public credited;
    /// @notice wei each identity may withdraw()
    mapping(address => uint256) public credit;
    mapping(uint64 => Payout) public payouts;
    /// @dev withdraw() is running (re-entrancy lock, transient storage)
    bool transient internal withdrawing;
    /// @dev the round collect() is pulling from (the one sender receive() accepts)
    address transient internal collecting;

    /// @notice `owner_` is the aggregator identity; `committeeSize_` the m of every round;
    /// `verifier_` a PvssVerifier (its code hash must be the one PvssRound pins)
    constructor(address owner_, uint16 committeeSize_, PvssVerifier verifier_) {
        if (committeeSize_ < 2 || committeeSize_ > MAX_COMMITTEE) revert TaskBadConfig(0);
        if (address(verifier_).codehash != VERIFIER_CODEHASH) revert TaskBadConfig(1);
        owner = owner_;
        committeeSize = committeeSize_;
        verifier = verifier_;
    }

    modifier onlyOwner() {
        if (msg.sender != owner) revert NotOwner(msg.sender);
        _;
    }

    // ------------------------------------------------------------------ roster

    /// @notice appends member seats (seat k = the k-th identity added); at most
    /// committeeSize in all
    function addMembers(address[] calldata ids) external onlyOwner {
        if (isSealed) revert RosterSealed();
        uint32 k = memberCount;
        if (k + ids.length > committeeSize) revert TaskIdOutOfRange(ROLE_MEMBER, uint32(k + ids.length), committeeSize);
        for (uint256 i; i < ids.length; ++i) {
            k = _add(members, ROLE_MEMBER, k, ids[i]);
        }
        memberCount = k;
    }

    /// @notice appends client seats (seat i = the i-th identity added)
    function addClients(address[] calldata ids) external onlyOwner {
        if (isSealed) revert RosterSealed();
        uint32 i = clientCount;
        for (uint256 j; j < ids.length; ++j) {
            i = _add(clients, ROLE_CLIENT, i, ids[j]);
        }
        clientCount = i;
    }

    function _add(mapping(uint32 => Seat) storage seats, uint8 role, uint32 last, address a)
        internal
        returns (uint32 party)
    {
        if (a == address(0) || seatOf[role][a] != 0) revert BadSeat(role, a);
        party = last + 1;
        seats[party].identity = a;
        seatOf[role][a] = party;
        rosterHash = keccak256(abi.encodePacked(rosterHash, role, party, a));
        emit SeatAdded(role, party, a);
    }

    /// @notice fixes the roster (every committee seat filled, at least 2 clients)
    function sealRoster() external onlyOwner {
        if (isSealed) revert RosterSealed();
        if (memberCount != committeeSize) revert TaskIdOutOfRange(ROLE_MEMBER, memberCount, committeeSize);
        if (clientCount < 2) revert TaskIdOutOfRange(ROLE_CLIENT, clientCount, 2);
        bytes32 h = rosterHash;
        isSealed = true;
        emit RosterSealedAt(memberCount, clientCount, h);
    }

    // ------------------------------------------------------------------ registration

    /// @notice Seat (`role`, `party`) registers its PVSS key once for the whole task: a
    /// proof of possession bound to (chain, this task, TASK_ROUND, role * 2^24 + party)
    /// and the seat identity's signature (see the contract notice). Anyone may relay it.
    function register(uint8 role, uint32 party, bytes calldata pk, bytes calldata pop, bytes calldata sig)
        external
    {
        if (role > ROLE_MEMBER) revert TaskInvalidRole(role);
        uint32 limit = role == ROLE_CLIENT ? clientCount : memberCount;
        if (party == 0 || party > limit) revert TaskIdOutOfRange(role, party, limit);
        Seat storage s = role == ROLE_CLIENT ? clients[party] : members[party];
        bytes32 digest = keccak256(abi.encodePacked(TAG_REGISTRATION, role, party, pk, pop));
        address signer = _recover(role, party, digest, sig);
        if (signer != s.identity) revert TaskWrongSigner(role, party, signer);
        if (s.registered) revert TaskAlreadyRegistered(role, party);
        verifier.verifyPop(block.chainid, address(this), TASK_ROUND, (uint32(role) << 24) | party, pk, pop);
        s.registered = true;
        s.pk = [uint256(bytes32(pk[0:32])), uint256(bytes32(pk[32:64]))];
        if (role == ROLE_CLIENT) registeredClients += 1;
        else registeredMembers += 1;
        emit TaskRegistered(role, party, signer, pk, pop, sig);
    }

    function _recover(uint8 role, uint32 party, bytes32 digest, bytes calldata sig)
        internal
        view
        returns (address signer)
    {
        if (sig.length != 65) revert TaskBadSignature(role, party);
        bytes32 r = bytes32(sig[0:32]);
        bytes32 s = bytes32(sig[32:64]);
        uint8 v = uint8(sig[64]);
        if ((v != 27 && v != 28) || uint256(s) == 0 || uint256(s) > SECP256K1_HALF_N) {
            revert TaskBadSignature(role, party);
        }
        bytes32 sd = keccak256(
            abi.encodePacked(DST_POST, block.chainid, address(this), TASK_ROUND, role, party, bytes32(0), digest)
        );
        signer = ecrecover(keccak256(abi.encodePacked("\x19Ethereum Signed Message:\n32", sd)), v, r, s);
        if (signer == address(0)) revert TaskBadSignature(role, party);
    }

    // ------------------------------------------------------------------ rounds

    /// @notice Opens round lastRound + 1: `round` is its round contract (the owner
    /// deployed it; its round id must be the next one and its aggregator the owner). The
    /// roster must be sealed.
    function openRound(PvssRound round) external onlyOwner returns (uint64 id) {
        if (!isSealed) revert RosterOpen();
        id = lastRound + 1;
        uint64 got = round.roundId();
        if (got != id) revert WrongRoundId(id, got);
        address agg = round.aggregator();
        if (agg != owner) revert WrongAggregator(agg);
        if (round.optimistic()) {
            address to = round.forfeitTo();
            if (to != address(this)) revert WrongForfeitTo(to);
        }
        lastRound = id;
        rounds[id] = address(round);
        Payout storage p = payouts[id];
        (p.perClient, p.perShare) = (rewardPerClient, rewardPerShare);
        emit RoundOpened(id, address(round), round.configDigest());
    }

    // ------------------------------------------------------------------ rewards

    /// @notice Sets the rewards (wei per included client, per valid share) of the rounds
    /// opened from now on; a round keeps the rewards it was opened with.
    function setRewards(uint128 perClient, uint128 perShare) external onlyOwner {
        (rewardPerClient, rewardPerShare) = (perClient, perShare);
        emit RewardsSet(lastRound + 1, perClient, perShare);
    }

    /// @notice Adds msg.value to the pool (anyone may fund a task).
    function fund() external payable {
        if (msg.value == 0) revert NothingToFund();
        funded += msg.value;
        pool += msg.value;
        emit Funded(msg.sender, msg.value);
    }

    /// @notice Pulls round `roundId`'s slashed stakes (less the challengers' rewards) and
    /// forfeited bonds, which the round credited to this task (its forfeitTo), into the
    /// pool (anyone may call, at any time; the amount is what this task's balance grew).
    function collect(uint64 roundId) external returns (uint256 got) {
        address r = rounds[roundId];
        if (r == address(0)) revert UnknownRound(roundId);
        if (collecting != address(0)) revert TaskReentrant();
        if (PvssRound(r).credit(address(this)) == 0) revert NothingToCollect(roundId);
        collecting = r;
        uint256 before = address(this).balance;
        PvssRound(r).withdraw();
        collecting = address(0);
        got = address(this).balance - before;
        slashed += got;
        pool += got;
        emit Collected(roundId, got);
    }

    /// @dev only the round collect() is pulling from may pay this contract outside fund()
    receive() external payable {
        if (msg.sender != collecting) revert UnexpectedPayment(msg.sender); // 0 outside collect(): no sender
    }

    /// @notice Credits the payouts of round `roundId` (anyone may call) once its result is
    /// posted: each member identity perShare per valid share it posted in the round, each
    /// included client identity perClient; an identity that is not the task's seat of that
    /// role, or that has a fault in the round, gets nothing. Paged: each call does the
    /// next `count` seats (members 1..m, then clients 1..n). The first call reserves
    /// min(owed, pool); if the pool is short every credit is scaled by reserved / owed
    /// (floor), and no credit takes the round's total past reserved; the last call
    /// returns reserved - paid to the pool. Once per round.
    function settle(uint64 roundId, uint32 count) external {
        address r = rounds[roundId];
        if (r == address(0)) revert UnknownRound(roundId);
        Payout storage p = payouts[roundId];
        if (p.done) revert AlreadySettled(roundId);
        if (count == 0) revert EmptyPage(roundId);
        PvssRound round = PvssRound(r);
        if (!round.resultPosted()) revert ResultNotPosted(roundId, r);
        uint32 m = round.committeeSize();
        uint32 end = m + round.nClients();
        if (!p.started) {
            uint256 shares;
            for (uint32 k = 1; k <= m; ++k) shares += _memberUnits(round, k, round.memberIdentity(k));
            uint256 owed = uint256(round.includedCount()) * p.perClient + shares * p.perShare;
            uint256 reserved = owed < pool ? owed : pool;
            pool -= reserved;
            (p.started, p.owed, p.reserved) = (true, owed, reserved);
            emit SettleStarted(roundId, owed, reserved);
        }
        uint32 pos = p.cursor;
        uint32 stop = end - pos < count ? end : pos + count;
        (uint256 owedAll, uint256 reservedAll) = (p.owed, p.reserved);
        uint256 paid;
        // never more than reserved, whatever the round's getters return on a later page
        uint256 left = reservedAll - p.paid;
        while (pos < stop) {
            ++pos;
            uint8 role;
            uint32 party;
            address a;
            uint64 units;
            uint256 amount;
            if (pos <= m) {
                (role, party) = (ROLE_MEMBER, pos);
                a = round.memberIdentity(party);
                units = _memberUnits(round, party, a);
                amount = uint256(units) * p.perShare;
            } else {
                (role, party) = (ROLE_CLIENT, pos - m);
                if (!round.isIncluded(party)) continue;
                (a,,,,,) = round.clients(party);
                if (seatOf[ROLE_CLIENT][a] == 0) continue;
                (,, uint64 faults) = round.reputation(a);
                if (faults != 0) continue;
                units = 1;
                amount = p.perClient;
            }
            if (amount == 0) continue;
            if (reservedAll < owedAll) amount = amount * reservedAll / owedAll;
            if (amount > left) amount = left;
            if (amount == 0) continue;
            left -= amount;
            credit[a] += amount;
            paid += amount;
            emit Credited(roundId, role, party, a, units, amount);
        }
        p.cursor = pos;
        uint256 total = p.paid + paid;
        p.paid = total;
        credited += paid;
        if (pos == end) {
            p.done = true;
            uint256 refund = reservedAll - total;
            pool += refund;
            emit Settled(roundId, total, refund);
        }
    }

    /// @dev the valid shares member k posted in the round (0 if its identity holds no
    /// member seat of this task or has a fault in the round)
    function _memberUnits(PvssRound round, uint32 k, address a) internal view returns (uint64) {
        if (seatOf[ROLE_MEMBER][a] != k) return 0;
        (, uint64 shares, uint64 faults) = round.reputation(a);
        return faults == 0 ? shares : 0;
    }

    /// @notice Pays msg.sender its credit (zeroed before the transfer; a transient lock
    /// makes a re-entrant call revert).
    function withdraw() external {
        if (withdrawing) revert TaskReentrant();
        withdrawing = true;
        uint256 amount = credit[msg.sender];
        if (amount == 0) revert NoTaskCredit(msg.sender);
        credit[msg.sender] = 0;
        (bool ok,) = msg.sender.call{value: amount}("");
        if (!ok) revert TaskTransferFailed(msg.sender);
        emit Withdrawn(msg.sender, amount);
        withdrawing = false;
    }

    // ------------------------------------------------------------------ views

    /// @notice (identity, registered, pk.x, pk.y) of a seat
    function seat(uint8 role, uint32 party) external view returns (address, bool, uint256, uint256) {
        if (role > ROLE_MEMBER) revert TaskInvalidRole(role);
        Seat storage s = role == ROLE_CLIENT ? clients[party] : members[party];
        return (s.identity, s.registered, s.pk[0], s.pk[1]);
    }

    /// @notice the identities of seats first..last of a role (a roster page)
    function identities(uint8 role, uint32 first, uint32 last) external view returns (address[] memory out) {
        if (role > ROLE_MEMBER) revert TaskInvalidRole(role);
        uint32 limit = role == ROLE_CLIENT ? clientCount : memberCount;
        if (first == 0 || last < first || last > limit) revert TaskIdOutOfRange(role, last, limit);
        out = new address[](last - first + 1);
        for (uint32 p = first; p <= last; ++p) {
            out[p - first] = (role == ROLE_CLIENT ? clients[p] : members[p]).identity;
        }
    }
}

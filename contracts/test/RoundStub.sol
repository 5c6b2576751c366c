// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

/// @title RoundStub — the getters of PvssRound that PvssTask.openRound / settle read, set
/// by hand (tests/adversarial/test_task_rewards_attacks.py, bench/gas.py settle rows at
/// n = 100 / 1000 without running a round). Not a round: nothing here is verified.
contract RoundStub {
    struct Client {
        address identity;
        uint8 flags;
        uint64 dealtAt;
        uint32 dealItems;
        uint32 dealDone;
        uint40 dealLast;
    }

    struct Reputation {
        uint64 validDealings;
        uint64 validShares;
        uint64 faults;
    }

    uint64 public immutable roundId;
    address public immutable aggregator;
    bytes32 public constant configDigest = keccak256("RoundStub");
    uint16 public committeeSize;
    uint32 public nClients;
    uint32 public includedCount;
    bool public resultPosted;
    mapping(uint32 => address) public memberIdentity;
    mapping(uint32 => Client) public clients;
    mapping(address => Reputation) public reputation;
    mapping(uint32 => bool) public isIncluded;

    /// @notice what PvssTask.openRound checks of an optimistic round
    bool public optimistic;
    address public forfeitTo;
    /// @notice wei the stub owes an account (a slashed stake it credited), paid by withdraw
    mapping(address => uint256) public credit;
    /// @notice withdraw() first calls collect(reenterRound) on the payee (a re-entry test)
    bool public reenter;
    uint64 public reenterRound;

    constructor(uint64 roundId_, address aggregator_) {
        roundId = roundId_;
        aggregator = aggregator_;
    }

    /// @notice members[k-1] posted shares[k-1] valid shares
    function setMembers(address[] calldata members, uint64[] calldata shares) external {
        committeeSize = uint16(members.length);
        for (uint32 k; k < members.length; ++k) {
            memberIdentity[k + 1] = members[k];
            reputation[members[k]].validShares = shares[k];
        }
    }

    /// @notice appends clients (the next seats), each included if included[j]
    function addClients(address[] calldata clients_, bool[] calldata included) external {
        uint32 i = nClients;
        uint32 count = includedCount;
        for (uint256 j; j < clients_.length; ++j) {
            ++i;
            clients[i].identity = clients_[j];
            isIncluded[i] = included[j];
            if (included[j]) count++;
        }
        (nClients, includedCount) = (i, count);
    }

    /// @notice PvssRound.rosterData: the stub keeps its seats in storage (no roster code)
    function rosterData() external pure returns (address) {
        return address(0);
    }

    /// @notice PvssRound.clientIdentity: the stub stores every seat's identity
    function clientIdentity(uint32 party) external view returns (address) {
        return clients[party].identity;
    }

    function setFault(address identity, uint64 faults) external {
        reputation[identity].faults = faults;
    }

    function postResult() external {
        resultPosted = true;
    }

    function setMode(bool optimistic_, address forfeitTo_) external {
        (optimistic, forfeitTo) = (optimistic_, forfeitTo_);
    }

    /// @notice credits `to` msg.value (as a slashed stake would be)
    function slash(address to) external payable {
        credit[to] += msg.value;
    }

    function setReenter(bool on, uint64 roundId_) external {
        (reenter, reenterRound) = (on, roundId_);
    }

    /// @notice pays msg.sender its credit (re-entering its collect() first when asked)
    function withdraw() external {
        uint256 amount = credit[msg.sender];
        credit[msg.sender] = 0;
        if (reenter) {
            (bool ok, bytes memory err) = msg.sender.call(abi.encodeWithSignature("collect(uint64)", reenterRound));
            if (!ok) {
                assembly ("memory-safe") {
                    revert(add(err, 0x20), mload(err))
                }
            }
        }
        (bool sent,) = msg.sender.call{value: amount}("");
        require(sent, "payment refused");
    }
}

// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

/// @title FakeTask — answers the two calls PvssRound.importKeys makes of a task (rounds,
/// seat) with whatever its deployer set: it claims to have opened any round and gives
/// seat identities the deployer's keys (tests/adversarial/test_import_attacks.py). Not
/// a task: nothing here is verified.
contract FakeTask {
    struct Seat {
        address identity;
        uint256 x;
        uint256 y;
    }

    mapping(uint64 => address) public rounds;
    mapping(uint32 => Seat) internal seats;

    function setRound(uint64 id, address round) external {
        rounds[id] = round;
    }

    function setSeat(uint32 party, address identity, uint256 x, uint256 y) external {
        seats[party] = Seat(identity, x, y);
    }

    function seat(uint8, uint32 party) external view returns (address, bool, uint256, uint256) {
        Seat storage s = seats[party];
        return (s.identity, s.identity != address(0), s.x, s.y);
    }
}

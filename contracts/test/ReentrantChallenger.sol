// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

/// @notice the part of PvssRound this attacker uses
interface IPvssRoundPull {
    function bond() external view returns (uint256);
    function challenge(uint32 dealer, uint8 purpose, uint32 partner, bytes calldata dealing, bytes calldata pks)
        external
        payable;
    function withdraw() external;
}

/// @title ReentrantChallenger — a challenger whose receive() re-enters withdraw()
/// (tests/adversarial/test_optimistic_economics.py): the re-entry must fail and the
/// credit be paid once.
contract ReentrantChallenger {
    IPvssRoundPull public immutable round;
    uint256 public received;
    uint256 public payments;
    bool public reentryFailed;
    bool public reentrySucceeded;

    constructor(IPvssRoundPull round_) payable {
        round = round_;
    }

    function challengeAndWithdraw(uint32 dealer, uint8 purpose, uint32 partner, bytes calldata dealing, bytes calldata pks)
        external
    {
        round.challenge{value: round.bond()}(dealer, purpose, partner, dealing, pks);
        round.withdraw();
    }

    receive() external payable {
        received += msg.value;
        payments += 1;
        if (payments == 1) {
            try round.withdraw() {
                reentrySucceeded = true;
            } catch {
                reentryFailed = true;
            }
        }
    }
}

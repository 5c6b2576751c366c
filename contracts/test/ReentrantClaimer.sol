// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

/// @notice the part of PvssTask this attacker uses
interface IPvssTaskPull {
    function withdraw() external;
}

/// @title ReentrantClaimer — a task seat identity whose receive() re-enters the task's
/// withdraw() (tests/adversarial/test_task_rewards_attacks.py): the re-entry must fail
/// and the credit be paid once.
contract ReentrantClaimer {
    IPvssTaskPull public task;
    uint256 public received;
    uint256 public payments;
    bool public reentryFailed;
    bool public reentrySucceeded;
    /// @notice the selector the re-entrant withdraw() reverted with
    bytes4 public reentryError;

    function setTask(IPvssTaskPull task_) external {
        task = task_;
    }

    function claim() external {
        task.withdraw();
    }

    receive() external payable {
        received += msg.value;
        payments += 1;
        if (payments == 1) {
            try task.withdraw() {
                reentrySucceeded = true;
            } catch (bytes memory reason) {
                reentryFailed = true;
                if (reason.length >= 4) reentryError = bytes4(reason);
            }
        }
    }
}

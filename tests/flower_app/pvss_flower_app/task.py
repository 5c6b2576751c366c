"""What the nodes train and how the server records it — shared by the loopback
deployment (tests/test_fl_deployment.py) and the simulation (tests/test_fl_flower_sim.py).

Every node's update is deterministic (partition p moves float array k by
0.01 (p + 1) (k + 1), weight 5 (p + 1)), so a test knows the FedAvg answer in advance.
"""

from __future__ import annotations

import numpy as np
from flwr.client import NumPyClient
from flwr.common import Context, parameters_to_ndarrays
from flwr.server.strategy import FedAvg

SHAPES = [(3, 4), (4,), (2,)]
COUNTER = 7  # an int64 array: carried through by the workflow, never aggregated
CLIP = 4.0


def initial_arrays() -> list[np.ndarray]:
    """The global model before round 1."""
    arrays = [np.linspace(-1, 1, int(np.prod(s)), dtype=np.float32).reshape(s) for s in SHAPES]
    return [*arrays, np.array([COUNTER], dtype=np.int64)]


def local_update(arrays: list[np.ndarray], partition: int) -> tuple[list[np.ndarray], int]:
    """Partition p's trained arrays and weight."""
    out = [
        a + np.float32(0.01 * (partition + 1) * (k + 1)) if a.dtype.kind == "f" else a + 1
        for k, a in enumerate(arrays)
    ]
    return out, 5 * (partition + 1)


def expected_fedavg(previous: list[np.ndarray], partitions: list[int]) -> list[np.ndarray]:
    """Plain FedAvg of the partitions' updates of ``previous`` (float arrays only)."""
    ups = [local_update(previous, p) for p in partitions]
    total = sum(w for _, w in ups)
    return [
        sum(w * arrs[k].astype(np.float64) for arrs, w in ups) / total
        for k in range(len(previous))
        if previous[k].dtype.kind == "f"
    ]


class DeterministicClient(NumPyClient):
    """Returns ``local_update`` of what it receives."""

    def __init__(self, partition: int) -> None:
        self.partition = partition

    def fit(self, parameters, config):  # noqa: ANN001, ANN201
        arrays, weight = local_update(parameters, self.partition)
        return arrays, weight, {"partition": self.partition}


def client_fn(context: Context):  # noqa: ANN201
    """The ClientApp's client for this node's partition."""
    return DeterministicClient(int(context.node_config["partition-id"])).to_client()


class RecordingFedAvg(FedAvg):
    """FedAvg that keeps every array's dtype (FedAvg's division turns an integer array
    into floats, which a later round would then average) and remembers whom it averaged
    and what came out, per round."""

    def __init__(self, n: int, **kwargs) -> None:  # noqa: ANN003
        from flwr.common import ndarrays_to_parameters  # noqa: PLC0415

        super().__init__(
            fraction_fit=1.0,
            fraction_evaluate=0.0,
            min_fit_clients=n,
            min_available_clients=n,
            initial_parameters=ndarrays_to_parameters(initial_arrays()),
            inplace=False,
            **kwargs,
        )
        self.rounds: list[dict] = []

    def aggregate_fit(self, server_round, results, failures):  # noqa: ANN001, ANN201
        from flwr.common import ndarrays_to_parameters  # noqa: PLC0415

        params, metrics = super().aggregate_fit(server_round, results, failures)
        dtypes = [a.dtype for a in parameters_to_ndarrays(results[0][1].parameters)]
        arrays = [
            a.astype(dt) for a, dt in zip(parameters_to_ndarrays(params), dtypes, strict=True)
        ]
        params = ndarrays_to_parameters(arrays)
        self.rounds.append(
            {
                "round": server_round,
                "partitions": sorted(int(r.metrics["partition"]) for _, r in results),
                "arrays": [a.tolist() for a in arrays],
            }
        )
        return params, metrics

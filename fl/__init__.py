"""Framework glue (SPEC.md §1.3): ``fl.tensors`` (model tensors <-> flat vectors),
``fl.relay`` (a node's side of a relayed round), ``fl.host`` (the server's side: board,
relay, aggregation, verification), ``fl.flower`` (``PvssSecAggWorkflow`` and
``pvss_secagg_mod`` for Flower), ``fl.demo`` (``pvss-secagg demo``)."""

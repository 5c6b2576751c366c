"""ClientApp: a NumPyClient behind pvss_secagg_mod (the switch from SecAgg+ is the mod)."""

from __future__ import annotations

from flwr.client import ClientApp

from fl.flower import pvss_secagg_mod
from pvss_flower_app.task import client_fn

app = ClientApp(client_fn=client_fn, mods=[pvss_secagg_mod])

"""The host wing: what runs on the real Linux kernel beside the simulator.

- :mod:`.probe` (+ ``probe.c``) — the C probe, compiled on first use, and its
  driver: runs it in real processes, reads host facts (the scenario protocol is
  :mod:`cowsim.validation.host_side`: validation imports the host, never the reverse);
- :mod:`.calibrate` — times the host's faults and forks with the probe and fits
  a :class:`~cowsim.cost.CostModel`.

"host" is the machine cowsim runs on; the simulated kernel is the core
(``csrc/``, :class:`cowsim.Machine`).  The command lines are ``cowsim validate``
and ``cowsim calibrate`` (:mod:`cowsim.cli`).
"""
from .calibrate import SAMPLE_RAW, Calibration, calibrate, fit_model, parse_raw
from .probe import (HostProbeError, HostUnavailable, fault_around_bytes, host_info, host_page_size, probe_binary,
                    probe_source, run_probe, unavailable_reason)

__all__ = [
    "HostUnavailable",
    "HostProbeError",
    "run_probe",
    "unavailable_reason",
    "probe_binary",
    "probe_source",
    "host_info",
    "host_page_size",
    "fault_around_bytes",
    "Calibration",
    "calibrate",
    "fit_model",
    "parse_raw",
    "SAMPLE_RAW",
]

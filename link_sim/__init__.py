"""link_sim: what a link will deliver, at what quality and how late (see docs/link_sim.md).

simpy models of channels and access (rate, delay, loss, contacts, duty cycle, message
sessions) drive the real ``uplink``/``downlink`` nodes and the sans-IO packet protocol;
``python -m link_sim SCENARIO.yaml`` runs a scenario and writes its report.
"""

from link_sim.mission import Mission
from link_sim.records import ImageTrace, MissionResult
from link_sim.scenario import Scenario, ScenarioError, load_scenario

__all__ = ["ImageTrace", "Mission", "MissionResult", "Scenario", "ScenarioError",
           "load_scenario"]

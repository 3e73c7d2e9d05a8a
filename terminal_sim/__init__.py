"""Simulated terminals and a simulated city: the lean websocket client, open-loop load with HDR
histograms, the fleet and city drivers with an auditor, the benchmark, the demo, and a PC/SC
reader terminal with a virtual card."""

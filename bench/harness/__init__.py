"""The tunnel benchmark's parts: namespaces, processes, the systems under test, one measurement, the report.

``bench/tunnels.py`` is the command; these modules hold no state of their own between runs.
"""

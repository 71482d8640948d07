"""The shared library every service is wired from. Imports no service and no engine code."""

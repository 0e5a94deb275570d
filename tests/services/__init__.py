"""Real servers for tests, ``perf/`` and ``make`` targets, started from registry packages.

No Docker: each launcher builds what it needs once (Maven Central jars into a cache folder
outside the repository), starts the server as a child process with its own data directory,
waits until it answers, and stops it. A server that cannot start raises an error that says why
and where its log is; nothing here ever skips.

- :mod:`tests.services.neo4j`: Neo4j 5.26 LTS Community (embedded DBMS with Bolt) on Java 17.
"""

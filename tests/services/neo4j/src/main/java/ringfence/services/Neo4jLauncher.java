package ringfence.services;

import java.io.IOException;
import java.io.InputStream;
import java.nio.file.Path;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.time.Duration;
import org.neo4j.configuration.GraphDatabaseInternalSettings;
import org.neo4j.configuration.GraphDatabaseSettings;
import org.neo4j.configuration.connectors.BoltConnector;
import org.neo4j.configuration.connectors.BoltConnectorInternalSettings;
import org.neo4j.configuration.connectors.HttpConnector;
import org.neo4j.configuration.connectors.HttpsConnector;
import org.neo4j.configuration.helpers.SocketAddress;
import org.neo4j.dbms.api.DatabaseManagementService;
import org.neo4j.dbms.api.DatabaseManagementServiceBuilder;
import org.neo4j.graphdb.GraphDatabaseService;
import org.neo4j.io.ByteUnit;
import org.neo4j.logging.log4j.Log4jLogProvider;

/**
 * An embedded Neo4j Community DBMS with the Bolt connector on, for tests and local use.
 *
 * <p>Usage: {@code Neo4jLauncher HOME_DIR PORT [PAGECACHE_MB] [--exit-on-stdin-eof]}. Listens on
 * 127.0.0.1:PORT, no auth, no TLS. Prints {@code RINGFENCE-NEO4J-READY bolt://127.0.0.1:PORT}
 * on stdout once the {@code neo4j} database is available, then blocks. SIGTERM (or, with
 * {@code --exit-on-stdin-eof}, the parent closing stdin) shuts the DBMS down cleanly.
 */
public final class Neo4jLauncher {
  static final String READY = "RINGFENCE-NEO4J-READY";
  private static final Duration QUICK = Duration.ofMillis(200);

  private Neo4jLauncher() {}

  public static void main(String[] args) throws Exception {
    if (args.length < 2) {
      System.err.println(
          "usage: Neo4jLauncher HOME_DIR PORT [PAGECACHE_MB] [--exit-on-stdin-eof]");
      System.exit(2);
    }
    Path home = Path.of(args[0]).toAbsolutePath();
    int port = Integer.parseInt(args[1]);
    long pagecacheMb = 64;
    boolean watchStdin = false;
    for (int i = 2; i < args.length; i++) {
      if (args[i].equals("--exit-on-stdin-eof")) {
        watchStdin = true;
      } else {
        pagecacheMb = Long.parseLong(args[i]);
      }
    }

    long started = System.nanoTime();
    DatabaseManagementService dbms =
        new DatabaseManagementServiceBuilder(home)
            .setUserLogProvider(new Log4jLogProvider(System.out))
            .setConfig(BoltConnector.enabled, true)
            .setConfig(BoltConnector.listen_address, new SocketAddress("127.0.0.1", port))
            .setConfig(BoltConnector.advertised_address, new SocketAddress("127.0.0.1", port))
            .setConfig(BoltConnector.encryption_level, BoltConnector.EncryptionLevel.DISABLED)
            .setConfig(HttpConnector.enabled, false)
            .setConfig(HttpsConnector.enabled, false)
            .setConfig(GraphDatabaseSettings.auth_enabled, false)
            .setConfig(GraphDatabaseSettings.udc_enabled, false)
            .setConfig(GraphDatabaseSettings.pagecache_memory, ByteUnit.mebiBytes(pagecacheMb))
            .setConfig(GraphDatabaseSettings.preallocate_logical_logs, false)
            .setConfig(GraphDatabaseSettings.preallocate_store_files, false)
            // Stop in well under a second: by default Bolt waits 5 s twice for idle sockets.
            .setConfig(BoltConnectorInternalSettings.enable_local_connector, false)
            .setConfig(BoltConnectorInternalSettings.connection_shutdown_wait_time, QUICK)
            .setConfig(BoltConnectorInternalSettings.thread_pool_shutdown_wait_time, QUICK)
            .setConfig(GraphDatabaseInternalSettings.netty_server_shutdown_quiet_period, 0)
            .setConfig(GraphDatabaseInternalSettings.netty_server_shutdown_timeout, QUICK)
            .build();

    CountDownLatch stopped = new CountDownLatch(1);
    Runtime.getRuntime()
        .addShutdownHook(
            new Thread(
                () -> {
                  dbms.shutdown();
                  System.out.println("RINGFENCE-NEO4J-STOPPED");
                  System.out.flush();
                  stopped.countDown();
                },
                "neo4j-shutdown"));

    GraphDatabaseService db = dbms.database(GraphDatabaseSettings.DEFAULT_DATABASE_NAME);
    if (!db.isAvailable(TimeUnit.MINUTES.toMillis(2))) {
      System.err.println("neo4j database did not become available within 2 minutes");
      System.exit(1);
    }
    long ms = TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - started);
    System.out.println(READY + " bolt://127.0.0.1:" + port + " in " + ms + " ms");
    System.out.flush();

    if (watchStdin) {
      Thread watcher = new Thread(Neo4jLauncher::exitOnStdinEof, "stdin-watch");
      watcher.setDaemon(true);
      watcher.start();
    }
    stopped.await();
  }

  /** Exit (running the shutdown hook) once stdin closes: the parent process has gone. */
  private static void exitOnStdinEof() {
    InputStream in = System.in;
    byte[] buf = new byte[256];
    try {
      while (in.read(buf) >= 0) {
        // discard
      }
    } catch (IOException e) {
      // treat as closed
    }
    System.exit(0);
  }
}

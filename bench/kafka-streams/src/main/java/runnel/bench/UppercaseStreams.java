package runnel.bench;

import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Properties;
import java.util.concurrent.CountDownLatch;

import org.apache.kafka.common.serialization.Serdes;
import org.apache.kafka.streams.KafkaStreams;
import org.apache.kafka.streams.StreamsBuilder;
import org.apache.kafka.streams.StreamsConfig;
import org.apache.kafka.streams.Topology;
import org.apache.kafka.streams.errors.StreamsUncaughtExceptionHandler;
import org.apache.kafka.streams.kstream.Consumed;
import org.apache.kafka.streams.kstream.Produced;

/**
 * The peer of Runnel's benchmark: the Kafka Streams program a team would write
 * for "consume, upper-case the value, produce". One {@code mapValues}, string
 * keys and values, everything else at Kafka Streams' defaults unless the
 * command line sets it.
 *
 * <pre>
 * java -cp 'DIR/*' runnel.bench.UppercaseStreams --brokers HOST:PORT \
 *     --input TOPIC --output TOPIC --application-id ID \
 *     [--guarantee at_least_once|exactly_once_v2] [--threads N] \
 *     [--state-dir DIR] [--set KEY=VALUE]...
 * </pre>
 *
 * {@code --set} passes any Streams, producer or consumer setting through
 * (e.g. {@code producer.linger.ms=0}, {@code commit.interval.ms=100}).
 * It runs until SIGTERM, then closes cleanly (committing what it has
 * processed); it exits with status 1 if Kafka Streams fails.
 */
public final class UppercaseStreams {
    /** How long a SIGTERM waits for Kafka Streams to commit and close. */
    private static final Duration CLOSE_TIMEOUT = Duration.ofSeconds(10);

    private UppercaseStreams() {}

    public static void main(String[] args) throws InterruptedException {
        // Warnings and errors only, unless the JVM is started with another level:
        // Kafka's clients log every setting at INFO, a few hundred lines.
        if (System.getProperty("org.slf4j.simpleLogger.defaultLogLevel") == null) {
            System.setProperty("org.slf4j.simpleLogger.defaultLogLevel", "warn");
        }
        Settings settings;
        try {
            settings = Settings.parse(args);
        } catch (IllegalArgumentException e) {
            System.err.println("uppercase-streams: " + e.getMessage());
            System.exit(2);
            return;
        }
        KafkaStreams streams = new KafkaStreams(topology(settings), settings.properties);
        CountDownLatch stopped = new CountDownLatch(1);
        streams.setUncaughtExceptionHandler(error -> {
            System.err.println("uppercase-streams: stream thread failed: " + error);
            return StreamsUncaughtExceptionHandler.StreamThreadExceptionResponse.SHUTDOWN_CLIENT;
        });
        streams.setStateListener((now, before) -> {
            System.err.println("uppercase-streams: " + before + " -> " + now);
            if (now == KafkaStreams.State.ERROR || now == KafkaStreams.State.NOT_RUNNING) {
                stopped.countDown();
            }
        });
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            streams.close(CLOSE_TIMEOUT);
            stopped.countDown();
        }));
        streams.start();
        stopped.await();
        // After a SIGTERM the JVM is already exiting; this is for a failure
        // of Kafka Streams, which must not look like a clean stop.
        if (streams.state() == KafkaStreams.State.ERROR) {
            System.exit(1);
        }
    }

    static Topology topology(Settings settings) {
        StreamsBuilder builder = new StreamsBuilder();
        builder.stream(settings.input, Consumed.with(Serdes.String(), Serdes.String()))
                .mapValues(value -> value == null ? null : value.toUpperCase(Locale.ROOT))
                .to(settings.output, Produced.with(Serdes.String(), Serdes.String()));
        return builder.build();
    }

    /** The command line, checked. */
    static final class Settings {
        final String input;
        final String output;
        final Properties properties;

        private Settings(String input, String output, Properties properties) {
            this.input = input;
            this.output = output;
            this.properties = properties;
        }

        static Settings parse(String[] args) {
            String brokers = null;
            String input = null;
            String output = null;
            String applicationId = null;
            String guarantee = StreamsConfig.AT_LEAST_ONCE;
            String threads = "1";
            String stateDir = null;
            List<String> raw = new ArrayList<>();
            for (int i = 0; i < args.length; i += 2) {
                if (i + 1 >= args.length) {
                    throw new IllegalArgumentException(args[i] + " needs a value");
                }
                String value = args[i + 1];
                switch (args[i]) {
                    case "--brokers" -> brokers = value;
                    case "--input" -> input = value;
                    case "--output" -> output = value;
                    case "--application-id" -> applicationId = value;
                    case "--guarantee" -> guarantee = value;
                    case "--threads" -> threads = value;
                    case "--state-dir" -> stateDir = value;
                    case "--set" -> raw.add(value);
                    default -> throw new IllegalArgumentException("unknown option " + args[i]);
                }
            }
            if (brokers == null || input == null || output == null || applicationId == null) {
                throw new IllegalArgumentException(
                        "--brokers, --input, --output and --application-id are required");
            }
            if (!guarantee.equals(StreamsConfig.AT_LEAST_ONCE)
                    && !guarantee.equals(StreamsConfig.EXACTLY_ONCE_V2)) {
                throw new IllegalArgumentException("--guarantee is at_least_once or exactly_once_v2, not "
                        + guarantee);
            }
            Properties properties = new Properties();
            properties.put(StreamsConfig.BOOTSTRAP_SERVERS_CONFIG, brokers);
            properties.put(StreamsConfig.APPLICATION_ID_CONFIG, applicationId);
            properties.put(StreamsConfig.PROCESSING_GUARANTEE_CONFIG, guarantee);
            properties.put(StreamsConfig.NUM_STREAM_THREADS_CONFIG, threads);
            if (stateDir != null) {
                properties.put(StreamsConfig.STATE_DIR_CONFIG, stateDir);
            }
            for (String pair : raw) {
                int equals = pair.indexOf('=');
                if (equals <= 0) {
                    throw new IllegalArgumentException("--set takes KEY=VALUE, not " + pair);
                }
                properties.put(pair.substring(0, equals), pair.substring(equals + 1));
            }
            return new Settings(input, output, properties);
        }
    }
}

package crm.sql;

import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import java.util.TreeSet;

import org.apache.spark.SparkConf;
import org.apache.spark.sql.SparkSession;
import org.apache.spark.sql.catalyst.FunctionIdentifier;
import org.apache.spark.sql.catalyst.TableIdentifier;
import org.apache.spark.sql.catalyst.expressions.Expression;
import org.apache.spark.sql.catalyst.parser.ParameterContext;
import org.apache.spark.sql.catalyst.parser.ParseException;
import org.apache.spark.sql.catalyst.parser.ParserInterface;
import org.apache.spark.sql.catalyst.plans.logical.LogicalPlan;
import org.apache.spark.sql.execution.command.ResetCommand;
import org.apache.spark.sql.execution.command.SetCommand;
import org.apache.spark.sql.types.DataType;
import org.apache.spark.sql.types.StructType;

import scala.Option;
import scala.Tuple2;
import scala.collection.immutable.Seq;
import scala.jdk.javaapi.CollectionConverters;

/**
 * The session settings an analyst may change: what a client needs to read results its way, and
 * nothing that changes what the server reads, where it connects or how it resolves a view.
 *
 * Settings reach a session two ways: a SET statement, checked by {@link #checkSet} with the rest
 * of the plan, and the connection itself (HiveServer2 applies a JDBC URL's {@code ?key=value}
 * part to the session before any statement). The second cannot be refused when it happens, so
 * {@link GuardedParser} refuses every statement of a session that holds a setting outside this
 * list, before the statement is resolved (a catalog setting acts during resolution).
 */
final class AnalystSettings {

    static final Set<String> SETTABLE = Set.of(
        "spark.sql.session.timeZone",
        "spark.sql.ansi.enabled",
        // The Thrift server sets these two in every session (and statement); clients may set them back.
        "spark.sql.datetime.java8API.enabled",
        "spark.sql.binaryOutputStyle",
        // The Hive JDBC driver sends its fetch size with every connection.
        "hive.server2.thrift.resultset.default.fetch.size");

    /** What the server writes into a session itself: Delta notes the version each commit made. */
    private static final Set<String> WRITTEN_BY_THE_SERVER = Set.of("spark.databricks.delta.lastCommitVersionInSession");

    private AnalystSettings() {
    }

    static void checkSet(SetCommand set) {
        Option<Tuple2<String, Option<String>>> kv = set.kv();
        if (kv.isEmpty() || kv.get()._1().strip().equals("-v")) {
            AnalystAccessPolicy.refuse("listing the server's settings is not allowed; ask for a key by name ("
                + settable() + ")");
        }
        String key = kv.get()._1().strip();
        if (!SETTABLE.contains(key)) {
            AnalystAccessPolicy.refuse("SET " + key + " is not allowed; the analyst role may set only " + settable());
        }
    }

    static void checkReset(ResetCommand reset) {
        Option<String> key = reset.config();
        if (key.isDefined() && !SETTABLE.contains(key.get().strip())) {
            AnalystAccessPolicy.refuse("RESET " + key.get().strip() + " is not allowed; the analyst role may reset only "
                + settable() + ", or every setting with RESET");
        }
    }

    /**
     * Refuses when the session holds a setting that differs from the server's own session (its
     * Spark and HiveServer2 settings, which every Thrift session inherits) and no analyst may set.
     */
    static void checkSession(SparkSession session) {
        SparkConf started = session.sparkContext().getConf();
        Option<SparkSession> server = SparkSession.getDefaultSession();
        Map<String, String> serverSettings = server.isDefined() && server.get() != session
            ? CollectionConverters.asJava(server.get().conf().getAll()) : Map.of();
        Map<String, String> current = CollectionConverters.asJava(session.conf().getAll());
        for (Map.Entry<String, String> setting : new TreeMap<>(current).entrySet()) {
            String key = setting.getKey();
            if (SETTABLE.contains(key) || WRITTEN_BY_THE_SERVER.contains(key)
                || setting.getValue().equals(serverSettings.get(key))) {
                continue;
            }
            Option<String> original = started.getOption(key);
            if (original.isEmpty() || !original.get().equals(setting.getValue())) {
                AnalystAccessPolicy.refuse("this connection set " + key + ", which the analyst role may not set; "
                    + "connect without it (allowed: " + settable() + ")");
            }
        }
    }

    private static String settable() {
        return String.join(", ", new TreeSet<>(SETTABLE));
    }

    /** Delta's (and Spark's) parser, with {@link #checkSession} before each analyst statement. */
    static final class GuardedParser implements ParserInterface {
        private final SparkSession session;
        private final ParserInterface delegate;

        GuardedParser(SparkSession session, ParserInterface delegate) {
            this.session = session;
            this.delegate = delegate;
        }

        private void guard() {
            if (AnalystAccessPolicy.isAnalystStatement()) {
                checkSession(session);
            }
        }

        @Override
        public LogicalPlan parsePlan(String sqlText) throws ParseException {
            guard();
            return delegate.parsePlan(sqlText);
        }

        @Override
        public LogicalPlan parsePlanWithParameters(String sqlText, ParameterContext parameters) throws ParseException {
            guard();
            return delegate.parsePlanWithParameters(sqlText, parameters);
        }

        @Override
        public LogicalPlan parseQuery(String sqlText) throws ParseException {
            guard();
            return delegate.parseQuery(sqlText);
        }

        @Override
        public Expression parseExpression(String sqlText) throws ParseException {
            return delegate.parseExpression(sqlText);
        }

        @Override
        public TableIdentifier parseTableIdentifier(String sqlText) throws ParseException {
            return delegate.parseTableIdentifier(sqlText);
        }

        @Override
        public FunctionIdentifier parseFunctionIdentifier(String sqlText) throws ParseException {
            return delegate.parseFunctionIdentifier(sqlText);
        }

        @Override
        public Seq<String> parseMultipartIdentifier(String sqlText) throws ParseException {
            return delegate.parseMultipartIdentifier(sqlText);
        }

        @Override
        public StructType parseRoutineParam(String sqlText) throws ParseException {
            return delegate.parseRoutineParam(sqlText);
        }

        @Override
        public StructType parseTableSchema(String sqlText) throws ParseException {
            return delegate.parseTableSchema(sqlText);
        }

        @Override
        public DataType parseDataType(String sqlText) throws ParseException {
            return delegate.parseDataType(sqlText);
        }
    }
}

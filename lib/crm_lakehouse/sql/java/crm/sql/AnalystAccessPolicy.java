package crm.sql;

import java.util.Set;

import org.apache.spark.sql.SparkSession;
import org.apache.spark.sql.SparkSessionExtensions;
import org.apache.spark.sql.catalyst.catalog.CatalogTable;
import org.apache.spark.sql.catalyst.expressions.Expression;
import org.apache.spark.sql.catalyst.expressions.SubqueryExpression;
import org.apache.spark.sql.catalyst.plans.logical.Command;
import org.apache.spark.sql.catalyst.plans.logical.LeafNode;
import org.apache.spark.sql.catalyst.plans.logical.LogicalPlan;
import org.apache.spark.sql.catalyst.plans.logical.View;
import org.apache.spark.sql.catalyst.parser.ParserInterface;
import org.apache.spark.sql.catalyst.plans.logical.DescribeRelation;
import org.apache.spark.sql.catalyst.plans.logical.ShowTablesExtended;
import org.apache.spark.sql.execution.command.DescribeTableCommand;
import org.apache.spark.sql.execution.command.ExplainCommand;
import org.apache.spark.sql.execution.command.ShowTablesCommand;
import org.apache.spark.sql.execution.command.ResetCommand;
import org.apache.spark.sql.execution.command.SetCommand;
import org.apache.spark.sql.execution.datasources.LogicalRelation;

import scala.Function1;
import scala.Option;
import scala.jdk.javaapi.CollectionConverters;
import scala.runtime.AbstractFunction1;
import scala.runtime.AbstractFunction2;
import scala.runtime.BoxedUnit;

/**
 * Read-only, analytics-only access for the analyst SQL endpoint (spark.sql.extensions).
 *
 * HiveServer2 authenticates but does not authorize, so the analyst endpoint enforces this after
 * every statement's analysis, before anything runs: a statement may read data only through the
 * views of the {@code analytics} schema (whose PII is masked); every other relation — a raw
 * table by name, a Delta or Parquet path, a table function over a table — is refused, and so is
 * every command except a short list that only shows metadata or session settings (no DDL, no
 * writes, no CREATE TABLE ... LOCATION, no ADD JAR, no functions, no EXPLAIN: a plan shows storage
 * paths and raw columns). The exception is the analysts' sandbox schemas ({@link Sandbox}), where
 * they may build Delta tables and views over the analytics views. Calling Java methods from SQL (reflect, java_method) is refused too, and
 * so is every setting outside {@link AnalystSettings#SETTABLE}. Only statements that arrive through the Thrift server
 * are checked: the server process itself registers the tables and creates the views at start.
 */
public final class AnalystAccessPolicy extends AbstractFunction1<SparkSessionExtensions, BoxedUnit> {

    public static final String SERVED_SCHEMA = "analytics";

    private static final Set<String> ALLOWED_LEAVES = Set.of(
        "LocalRelation", "OneRowRelation", "Range", "CTERelationRef", "UnionLoopRef");

    private static final Set<String> ALLOWED_COMMANDS = Set.of(
        "SetCommand", "ResetCommand", "SetCatalogAndNamespace", "SetNamespaceCommand",
        "ShowNamespaces", "ShowNamespacesCommand", "ShowTables", "ShowTablesCommand", "ShowTablesExtended",
        "ShowViews", "ShowViewsCommand", "ShowColumns", "ShowColumnsCommand", "ShowCatalogsCommand",
        "ShowCurrentNamespace", "ShowCurrentNamespaceCommand", "ShowFunctions", "ShowFunctionsCommand",
        "DescribeRelation", "DescribeTableCommand", "DescribeColumn", "DescribeColumnCommand",
        "DescribeNamespace", "DescribeDatabaseCommand", "DescribeFunction", "DescribeFunctionCommand",
        "ShowTableProperties", "ShowTablePropertiesCommand");

    private static final String THRIFT_STATEMENT =
        "org.apache.spark.sql.hive.thriftserver.SparkExecuteStatementOperation";

    private static final String VIEW_RESOLUTION = "org.apache.spark.sql.catalyst.analysis.ViewResolution$";

    private static final Set<String> REFUSED_EXPRESSIONS = Set.of("CallMethodViaReflection");

    @Override
    public BoxedUnit apply(SparkSessionExtensions extensions) {
        extensions.injectParser(new AbstractFunction2<SparkSession, ParserInterface, ParserInterface>() {
            @Override
            public ParserInterface apply(SparkSession session, ParserInterface delegate) {
                return new AnalystSettings.GuardedParser(session, delegate);
            }
        });
        extensions.injectCheckRule(new AbstractFunction1<SparkSession, Function1<LogicalPlan, BoxedUnit>>() {
            @Override
            public Function1<LogicalPlan, BoxedUnit> apply(SparkSession session) {
                return new AbstractFunction1<LogicalPlan, BoxedUnit>() {
                    @Override
                    public BoxedUnit apply(LogicalPlan plan) {
                        if (isAnalystStatement()) {
                            check(plan);
                        }
                        return BoxedUnit.UNIT;
                    }
                };
            }
        });
        return BoxedUnit.UNIT;
    }

    /**
     * Whether the plan being checked is a statement an analyst sent, rather than a plan Spark or
     * Delta analyses on their own while serving it: a view's body, which Spark also checks on
     * its own while resolving the view (the view itself stays in the statement's plan, where
     * {@link #check} admits the analytics views and checks the body of any other it allows), or a
     * read of a Delta log. Found from the call stack: the nearest of those frameworks' frames
     * above the check decides.
     */
    static boolean isAnalystStatement() {
        return StackWalker.getInstance().walk(frames -> frames.map(StackWalker.StackFrame::getClassName)
            .filter(name -> name.equals(VIEW_RESOLUTION) || name.startsWith("org.apache.spark.sql.delta.")
                || name.startsWith("io.delta.") || name.startsWith(THRIFT_STATEMENT))
            .findFirst().map(name -> name.startsWith(THRIFT_STATEMENT)).orElse(false));
    }

    static void check(LogicalPlan plan) {
        if (plan instanceof View) {
            View view = (View) plan;
            Option<String> schema = view.desc().identifier().database();
            if (!view.isTempView() && schema.isDefined() && SERVED_SCHEMA.equalsIgnoreCase(schema.get())) {
                return;  // the analytics views are the masked, allowed way to the data
            }
            if (view.isTempView() || schema.isDefined() && Sandbox.isSandbox(schema.get())) {
                check(view.child());  // whoever wrote it, its body may read only what an analyst may
                return;
            }
            refuse("view " + view.desc().identifier().unquotedString() + " is not in the " + SERVED_SCHEMA
                + " schema or a sandbox");
        }
        if (Sandbox.allows(plan)) {
            return;
        }
        String kind = plan.getClass().getSimpleName();
        if (plan instanceof SetCommand) {
            AnalystSettings.checkSet((SetCommand) plan);
        } else if (plan instanceof ResetCommand) {
            AnalystSettings.checkReset((ResetCommand) plan);
        } else if (plan instanceof ExplainCommand) {
            refuse("EXPLAIN is not allowed (a plan shows storage paths and raw columns)");
        } else if (isExtendedListing(plan) && !Sandbox.isSandboxListing(plan)) {
            refuse("DESCRIBE EXTENDED and SHOW TABLE EXTENDED are not allowed (they show a view's SQL and storage "
                + "paths); DESCRIBE and SHOW TABLES show the columns and names");
        }
        if (plan instanceof Command) {
            if (!ALLOWED_COMMANDS.contains(kind)) {
                refuse(kind + " is not allowed (read-only access to " + SERVED_SCHEMA + ".*)");
            }
            return;  // the allowed commands' children name tables or namespaces; they read no rows
        }
        if (plan instanceof LeafNode && !ALLOWED_LEAVES.contains(kind) && !Sandbox.isReadableTable(plan)) {
            refuse("reading " + describe(plan) + " directly is not allowed; query the " + SERVED_SCHEMA + " views");
        }
        for (Expression expression : CollectionConverters.asJava(plan.expressions())) {
            checkExpression(expression);
        }
        for (LogicalPlan child : CollectionConverters.asJava(plan.children())) {
            check(child);
        }
    }

    private static boolean isExtendedListing(LogicalPlan plan) {
        if (plan instanceof DescribeRelation) {
            return ((DescribeRelation) plan).isExtended();
        }
        if (plan instanceof DescribeTableCommand) {
            return ((DescribeTableCommand) plan).isExtended();
        }
        return plan instanceof ShowTablesExtended || plan instanceof ShowTablesCommand
            && ((ShowTablesCommand) plan).isExtended();
    }

    private static String describe(LogicalPlan relation) {
        if (relation instanceof LogicalRelation) {
            Option<CatalogTable> table = ((LogicalRelation) relation).catalogTable();
            return table.isDefined() ? "table " + table.get().identifier().unquotedString() : "files by path";
        }
        return relation.nodeName();
    }

    private static void checkExpression(Expression expression) {
        String kind = expression.getClass().getSimpleName();
        if (REFUSED_EXPRESSIONS.contains(kind)) {
            refuse(expression.prettyName() + "() is not allowed");
        }
        if (expression instanceof SubqueryExpression) {
            check(((SubqueryExpression) expression).plan());
        }
        for (Expression child : CollectionConverters.asJava(expression.children())) {
            checkExpression(child);
        }
    }

    static void refuse(String why) {
        throw new SecurityException("access denied for the analyst role: " + why
            + ". The analyst endpoint serves " + SERVED_SCHEMA + ".* (PII masked) and the " + Sandbox.prefix()
            + "* schemas built on it; raw layers need the engineer role.");
    }
}

package crm.sql;

import java.util.Locale;
import java.util.Map;

import org.apache.hadoop.fs.Path;
import org.apache.spark.sql.SparkSession;
import org.apache.spark.sql.catalyst.TableIdentifier;
import org.apache.spark.sql.catalyst.analysis.GlobalTempView$;
import org.apache.spark.sql.catalyst.analysis.NamedRelation;
import org.apache.spark.sql.catalyst.analysis.ResolvedIdentifier;
import org.apache.spark.sql.catalyst.analysis.ResolvedNamespace;
import org.apache.spark.sql.catalyst.analysis.ResolvedPersistentView;
import org.apache.spark.sql.catalyst.analysis.ResolvedTable;
import org.apache.spark.sql.catalyst.catalog.CatalogTable;
import org.apache.spark.sql.catalyst.plans.logical.CommentOnTable;
import org.apache.spark.sql.catalyst.plans.logical.AlterColumns;
import org.apache.spark.sql.catalyst.plans.logical.CreateNamespace;
import org.apache.spark.sql.catalyst.plans.logical.CreateTable;
import org.apache.spark.sql.catalyst.plans.logical.CreateTableAsSelect;
import org.apache.spark.sql.catalyst.plans.logical.ReplaceTableAsSelect;
import org.apache.spark.sql.catalyst.plans.logical.DescribeRelation;
import org.apache.spark.sql.catalyst.plans.logical.DropNamespace;
import org.apache.spark.sql.catalyst.plans.logical.DropTable;
import org.apache.spark.sql.catalyst.plans.logical.LogicalPlan;
import org.apache.spark.sql.catalyst.plans.logical.SetTableProperties;
import org.apache.spark.sql.catalyst.plans.logical.ShowTablesExtended;
import org.apache.spark.sql.catalyst.plans.logical.TableSpec;
import org.apache.spark.sql.catalyst.plans.logical.TableSpecBase;
import org.apache.spark.sql.catalyst.plans.logical.V2CreateTableAsSelectPlan;
import org.apache.spark.sql.catalyst.plans.logical.V2WriteCommand;
import org.apache.spark.sql.connector.catalog.CatalogManager;
import org.apache.spark.sql.connector.catalog.Identifier;
import org.apache.spark.sql.execution.command.CreateViewCommand;
import org.apache.spark.sql.execution.command.CreateDataSourceTableAsSelectCommand;
import org.apache.spark.sql.execution.command.CreateDataSourceTableCommand;
import org.apache.spark.sql.execution.command.DescribeTableCommand;
import org.apache.spark.sql.execution.command.DropTableCommand;
import org.apache.spark.sql.execution.command.ShowTablesCommand;
import org.apache.spark.sql.execution.datasources.LogicalRelation;
import org.apache.spark.sql.execution.datasources.v2.DataSourceV2Relation;
import org.apache.spark.sql.internal.SQLConf;

import scala.Option;
import scala.jdk.javaapi.CollectionConverters;

/**
 * The analysts' own schemas (dbt's target): the analyst role may create schemas whose names start
 * with the sandbox prefix, and Delta tables and views in them, whose bodies read only the
 * analytics views and other sandbox objects. The bodies are checked when an object is created and
 * again whenever it is read, so a view that someone else (the engineer role) created over a raw
 * table is refused to analysts all the same. Sandbox tables live in the endpoint's warehouse
 * folder under the lakehouse root and take no LOCATION: a table placed on another table's folder
 * would read that table's rows.
 */
final class Sandbox {

    static final String PREFIX_KEY = "spark.crm.sql.sandboxPrefix";
    static final String DEFAULT_PREFIX = "sandbox_";
    private static final String DELTA_ONLY =
        "sandbox tables are Delta tables: add USING delta (dbt: +file_format: delta for models and seeds)";

    private Sandbox() {
    }

    static String prefix() {
        return SQLConf.get().getConfString(PREFIX_KEY, DEFAULT_PREFIX).toLowerCase(Locale.ROOT);
    }

    static boolean isSandbox(String schema) {
        return schema != null && schema.toLowerCase(Locale.ROOT).startsWith(prefix())
            && !schema.equalsIgnoreCase(AnalystAccessPolicy.SERVED_SCHEMA);
    }

    /** The schema of a one-part namespace, else null (a catalog or nested namespace is never a sandbox). */
    static String schemaOf(String[] namespace) {
        return namespace.length == 1 ? namespace[0] : null;
    }

    static String schemaOf(scala.collection.Seq<String> namespace) {
        return schemaOf(CollectionConverters.asJava(namespace).toArray(new String[0]));
    }

    /**
     * Whether {@code plan} is a command on sandbox objects an analyst may run; the queries inside
     * it are checked with the rest of the policy first. False for every other plan.
     */
    static boolean allows(LogicalPlan plan) {
        if (plan instanceof CreateNamespace) {
            CreateNamespace create = (CreateNamespace) plan;
            requireSandbox(namespaceOf(create.name()), "CREATE SCHEMA");
            for (String key : CollectionConverters.asJava(create.properties()).keySet()) {
                if (key.toLowerCase(Locale.ROOT).contains("location")) {
                    refuse("CREATE SCHEMA ... LOCATION is not allowed: sandbox schemas live in the endpoint's warehouse");
                }
            }
            return true;
        }
        if (plan instanceof DropNamespace) {
            requireSandbox(namespaceOf(((DropNamespace) plan).namespace()), "DROP SCHEMA");
            return true;
        }
        if (plan instanceof V2CreateTableAsSelectPlan) {
            V2CreateTableAsSelectPlan create = (V2CreateTableAsSelectPlan) plan;
            requireSandbox(sessionSchema(create.tableName(), create.name()), "CREATE TABLE");
            requireDeltaInWarehouse(plan instanceof CreateTableAsSelect ? ((CreateTableAsSelect) plan).tableSpec()
                : plan instanceof ReplaceTableAsSelect ? ((ReplaceTableAsSelect) plan).tableSpec() : null);
            AnalystAccessPolicy.check(create.query());
            return true;
        }
        if (plan instanceof CreateTable) {
            CreateTable create = (CreateTable) plan;
            requireSandbox(sessionSchema(create.tableName(), create.name()), "CREATE TABLE");
            requireDeltaInWarehouse(create.tableSpec());
            return true;
        }
        if (plan instanceof CreateDataSourceTableCommand || plan instanceof CreateDataSourceTableAsSelectCommand) {
            refuse(DELTA_ONLY);  // what CREATE TABLE without USING delta becomes
        }
        if (plan instanceof CreateViewCommand) {
            CreateViewCommand create = (CreateViewCommand) plan;
            if (create.viewType() == GlobalTempView$.MODULE$) {
                refuse("CREATE GLOBAL TEMPORARY VIEW is not allowed; create the view in a sandbox schema");
            }
            if (create.viewType().toString().equals("PersistedView")) {
                requireSandbox(databaseOf(create.name()), "CREATE VIEW");
            }
            AnalystAccessPolicy.check(create.plan());
            return true;
        }
        if (plan instanceof V2WriteCommand) {
            V2WriteCommand write = (V2WriteCommand) plan;
            requireSandbox(relationSchema(write.table()), "writing a table");
            AnalystAccessPolicy.check(write.query());
            return true;
        }
        if (plan instanceof DropTable) {
            requireSandbox(namespaceOf(((DropTable) plan).child()), "DROP TABLE");
            return true;
        }
        if (plan instanceof DropTableCommand) {
            requireSandbox(databaseOf(((DropTableCommand) plan).tableName()), "DROP");
            return true;
        }
        if (plan instanceof SetTableProperties || plan instanceof AlterColumns || plan instanceof CommentOnTable) {
            requireSandbox(namespaceOf(plan.children().head()), plan.nodeName());
            return true;
        }
        return false;
    }

    /** DESCRIBE EXTENDED and SHOW TABLE EXTENDED of a sandbox: dbt reads a relation's type and format there. */
    static boolean isSandboxListing(LogicalPlan plan) {
        if (plan instanceof DescribeRelation) {
            return isSandbox(namespaceOf(((DescribeRelation) plan).relation()));
        }
        if (plan instanceof DescribeTableCommand) {
            return isSandbox(databaseOf(((DescribeTableCommand) plan).table()));
        }
        if (plan instanceof ShowTablesExtended) {
            return isSandbox(namespaceOf(((ShowTablesExtended) plan).namespace()));
        }
        if (plan instanceof ShowTablesCommand) {
            Option<String> database = ((ShowTablesCommand) plan).databaseName();
            return isSandbox(database.isDefined() ? database.get() : currentDatabase());
        }
        return false;
    }

    /** A sandbox table read by name: allowed when it lies in the endpoint's warehouse. */
    static boolean isReadableTable(LogicalPlan relation) {
        TableIdentifier name = null;
        if (relation instanceof LogicalRelation && ((LogicalRelation) relation).catalogTable().isDefined()) {
            name = ((LogicalRelation) relation).catalogTable().get().identifier();
        } else if (relation instanceof DataSourceV2Relation) {
            Option<Identifier> identifier = ((DataSourceV2Relation) relation).identifier();
            if (identifier.isDefined() && schemaOf(identifier.get().namespace()) != null) {
                name = new TableIdentifier(identifier.get().name(), Option.apply(schemaOf(identifier.get().namespace())));
            }
        }
        return name != null && isSandbox(databaseOf(name)) && inWarehouse(name);
    }

    private static boolean inWarehouse(TableIdentifier name) {
        SparkSession session = SparkSession.active();
        CatalogTable table;
        try {
            table = session.sessionState().catalog().getTableMetadata(name);
        } catch (Exception missing) {  // dropped since the plan was resolved
            return false;
        }
        Path warehouse = qualified(session, session.sharedState().conf().get("spark.sql.warehouse.dir"));
        Path location = qualified(session, table.location().toString());
        for (Path folder = location; folder != null; folder = folder.getParent()) {
            if (folder.equals(warehouse)) {
                return true;
            }
        }
        return false;
    }

    private static Path qualified(SparkSession session, String path) {
        try {
            Path raw = new Path(path);
            return raw.getFileSystem(session.sessionState().newHadoopConf()).makeQualified(raw);
        } catch (java.io.IOException error) {
            throw new IllegalStateException(error);
        }
    }

    private static String relationSchema(NamedRelation table) {
        if (table instanceof DataSourceV2Relation) {
            Option<Identifier> identifier = ((DataSourceV2Relation) table).identifier();
            return identifier.isDefined() ? schemaOf(identifier.get().namespace()) : null;
        }
        if (table instanceof LogicalRelation && ((LogicalRelation) table).catalogTable().isDefined()) {
            return databaseOf(((LogicalRelation) table).catalogTable().get().identifier());
        }
        return null;
    }

    /** The schema a v2 create names, provided it is in the session catalog (where sandboxes live). */
    private static String sessionSchema(Identifier table, LogicalPlan name) {
        if (name instanceof ResolvedIdentifier
            && !CatalogManager.SESSION_CATALOG_NAME().equals(((ResolvedIdentifier) name).catalog().name())) {
            return null;
        }
        return schemaOf(table.namespace());
    }

    static String namespaceOf(LogicalPlan resolved) {
        if (resolved instanceof ResolvedNamespace) {
            return schemaOf(((ResolvedNamespace) resolved).namespace());
        }
        if (resolved instanceof ResolvedIdentifier) {
            return schemaOf(((ResolvedIdentifier) resolved).identifier().namespace());
        }
        if (resolved instanceof ResolvedTable) {
            return schemaOf(((ResolvedTable) resolved).identifier().namespace());
        }
        if (resolved instanceof ResolvedPersistentView) {
            return schemaOf(((ResolvedPersistentView) resolved).identifier().namespace());
        }
        return null;
    }

    private static String databaseOf(TableIdentifier name) {
        return name.database().isDefined() ? name.database().get() : currentDatabase();
    }

    private static String currentDatabase() {
        return SparkSession.active().sessionState().catalog().getCurrentDatabase();
    }

    private static void requireSandbox(String schema, String what) {
        if (!isSandbox(schema)) {
            refuse(what + " is allowed only in schemas whose names start with '" + prefix() + "'"
                + (schema == null ? "" : " (not " + schema + ")"));
        }
    }

    private static void requireDeltaInWarehouse(TableSpecBase spec) {
        if (!(spec instanceof TableSpec)) {
            refuse("this form of CREATE TABLE is not allowed in a sandbox; use CREATE TABLE ... USING delta");
        }
        TableSpec table = (TableSpec) spec;
        if (!table.provider().isDefined() || !table.provider().get().equalsIgnoreCase("delta")) {
            refuse(DELTA_ONLY);
        }
        Map<String, String> options = CollectionConverters.asJava(table.options());
        if (table.location().isDefined() || table.external()
            || options.keySet().stream().anyMatch(key -> key.equalsIgnoreCase("path"))) {
            refuse("a sandbox table takes no LOCATION or path: it lives in the endpoint's warehouse");
        }
    }

    private static void refuse(String why) {
        AnalystAccessPolicy.refuse(why);
    }
}

package crm.sql;

import java.io.IOException;
import java.io.OutputStream;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

import com.fasterxml.jackson.databind.ObjectMapper;
import org.apache.hadoop.fs.FileSystem;
import org.apache.hadoop.fs.Path;
import org.apache.spark.sql.SparkSession;
import org.apache.spark.sql.catalyst.TableIdentifier;
import org.apache.spark.sql.catalyst.catalog.CatalogTable;
import org.apache.spark.sql.catalyst.plans.logical.CommandResult;
import org.apache.spark.sql.catalyst.plans.logical.DropNamespace;
import org.apache.spark.sql.catalyst.plans.logical.DropTable;
import org.apache.spark.sql.catalyst.analysis.ResolvedTable;
import org.apache.spark.sql.catalyst.plans.logical.AlterTableCommand;
import org.apache.spark.sql.catalyst.plans.logical.LogicalPlan;
import org.apache.spark.sql.catalyst.plans.logical.V2CreateTablePlan;
import org.apache.spark.sql.catalyst.plans.logical.V2WriteCommand;
import org.apache.spark.sql.connector.catalog.Identifier;
import org.apache.spark.sql.execution.datasources.v2.DataSourceV2Relation;
import org.apache.spark.sql.execution.QueryExecution;
import org.apache.spark.sql.execution.command.CreateViewCommand;
import org.apache.spark.sql.execution.command.DropTableCommand;
import org.apache.spark.sql.internal.SQLConf;
import org.apache.spark.sql.types.StructField;
import org.apache.spark.sql.util.QueryExecutionListener;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import scala.Option;
import scala.jdk.javaapi.CollectionConverters;

/**
 * Keeps the sandbox schemas' views across restarts (spark.sql.queryExecutionListeners).
 *
 * The endpoint's catalog lives in its process. A sandbox schema's folder and its Delta tables'
 * folders are on disk already; a view is only a catalog entry, so each sandbox view created here
 * is also written as {@code <schema folder>/_crm_views/<view>.json} (its SQL, the namespace it
 * was written in, its column names and comments), and deleted with the view. At start the
 * endpoint re-registers the tables and re-creates the views from these files (sql/sandbox.py).
 * One file per view, so two endpoints over one lakehouse do not overwrite each other's.
 * A sandbox table that was created, written or altered gets its columns copied into its catalog
 * entry ({@link TableSchemas}), so JDBC clients see them.
 */
public final class SandboxCatalog implements QueryExecutionListener {

    static final String VIEWS_FOLDER = "_crm_views";

    private static final Logger LOG = LoggerFactory.getLogger(SandboxCatalog.class);
    private static final ObjectMapper JSON = new ObjectMapper();

    @Override
    public void onSuccess(String action, QueryExecution execution, long durationNs) {
        LogicalPlan plan = execution.analyzed();
        if (plan instanceof CommandResult) {
            plan = ((CommandResult) plan).commandLogicalPlan();
        }
        SparkSession session = execution.sparkSession();
        try {
            if (plan instanceof CreateViewCommand) {
                CreateViewCommand create = (CreateViewCommand) plan;
                if (create.viewType().toString().equals("PersistedView") && Sandbox.isSandbox(database(session, create.name()))) {
                    saveView(session, qualify(session, create.name()));
                }
            } else if (createdOrChangedTable(plan) != null) {
                TableIdentifier table = createdOrChangedTable(plan);
                if (Sandbox.isSandbox(table.database().get())) {
                    TableSchemas.publish(session, table.database().get(), table.table());
                }
            } else if (plan instanceof DropTableCommand) {
                forget(session, qualify(session, ((DropTableCommand) plan).tableName()));
            } else if (plan instanceof DropTable) {
                String schema = Sandbox.namespaceOf(((DropTable) plan).child());
                LogicalPlan target = ((DropTable) plan).child();
                if (schema != null && target instanceof org.apache.spark.sql.catalyst.analysis.ResolvedIdentifier) {
                    String name = ((org.apache.spark.sql.catalyst.analysis.ResolvedIdentifier) target).identifier().name();
                    forget(session, new TableIdentifier(name, Option.apply(schema)));
                }
            } else if (plan instanceof DropNamespace) {
                String schema = Sandbox.namespaceOf(((DropNamespace) plan).namespace());
                if (Sandbox.isSandbox(schema)) {
                    delete(session, schemaFolder(session, schema));
                }
            }
        } catch (Exception error) {  // the statement succeeded; a failure here must not fail it
            LOG.warn("could not record the sandbox change of " + plan.nodeName() + "; it may not survive a restart", error);
        }
    }

    /** The table a create, write or ALTER made or changed (its schema may be new), else null. */
    private static TableIdentifier createdOrChangedTable(LogicalPlan plan) {
        Identifier name = null;
        if (plan instanceof V2CreateTablePlan) {
            name = ((V2CreateTablePlan) plan).tableName();
        } else if (plan instanceof V2WriteCommand && ((V2WriteCommand) plan).table() instanceof DataSourceV2Relation) {
            Option<Identifier> written = ((DataSourceV2Relation) ((V2WriteCommand) plan).table()).identifier();
            name = written.isDefined() ? written.get() : null;
        } else if (plan instanceof AlterTableCommand && ((AlterTableCommand) plan).table() instanceof ResolvedTable) {
            name = ((ResolvedTable) ((AlterTableCommand) plan).table()).identifier();
        }
        if (name == null || name.namespace().length != 1) {
            return null;
        }
        return new TableIdentifier(format(name.name()), Option.apply(format(name.namespace()[0])));
    }

    @Override
    public void onFailure(String action, QueryExecution execution, Exception error) {
    }

    private static void saveView(SparkSession session, TableIdentifier name) throws Exception {
        CatalogTable view = session.sessionState().catalog().getTableMetadata(name);
        List<Map<String, String>> columns = new ArrayList<>();
        for (StructField field : view.schema().fields()) {
            Map<String, String> column = new LinkedHashMap<>();
            column.put("name", field.name());
            Option<String> comment = field.getComment();
            column.put("comment", comment.isDefined() ? comment.get() : null);
            columns.add(column);
        }
        Map<String, Object> record = new LinkedHashMap<>();
        record.put("schema", name.database().get());
        record.put("name", name.table());
        record.put("sql", view.viewText().get());
        record.put("namespace", CollectionConverters.asJava(view.viewCatalogAndNamespace()));
        record.put("comment", view.comment().isDefined() ? view.comment().get() : null);
        record.put("columns", columns);
        record.put("created_ms", System.currentTimeMillis());
        Path file = viewFile(session, name);
        FileSystem fs = file.getFileSystem(session.sessionState().newHadoopConf());
        Path partial = new Path(file.getParent(), "." + file.getName() + ".tmp");
        try (OutputStream out = fs.create(partial, true)) {
            out.write(JSON.writeValueAsString(record).getBytes(StandardCharsets.UTF_8));
        }
        fs.delete(file, false);
        fs.rename(partial, file);
    }

    /** A dropped sandbox object: its view file, and its table folder if the catalog left it (a re-registered table). */
    private static void forget(SparkSession session, TableIdentifier name) throws IOException {
        if (!Sandbox.isSandbox(name.database().get())) {
            return;
        }
        delete(session, viewFile(session, name));
        if (!session.sessionState().catalog().tableExists(name)) {
            delete(session, new Path(schemaFolder(session, name.database().get()), name.table()));
        }
    }

    private static void delete(SparkSession session, Path path) throws IOException {
        FileSystem fs = path.getFileSystem(session.sessionState().newHadoopConf());
        if (fs.exists(path)) {
            fs.delete(path, true);
        }
    }

    private static Path viewFile(SparkSession session, TableIdentifier name) {
        Path folder = new Path(schemaFolder(session, name.database().get()), VIEWS_FOLDER);
        return new Path(folder, name.table() + ".json");
    }

    private static Path schemaFolder(SparkSession session, String schema) {
        String warehouse = session.sharedState().conf().get("spark.sql.warehouse.dir");
        return new Path(warehouse, format(schema) + ".db");
    }

    private static TableIdentifier qualify(SparkSession session, TableIdentifier name) {
        return new TableIdentifier(format(name.table()), Option.apply(format(database(session, name))));
    }

    /** As the session catalog stores names (lower case unless analysis is case-sensitive). */
    private static String format(String name) {
        return SQLConf.get().caseSensitiveAnalysis() ? name : name.toLowerCase(java.util.Locale.ROOT);
    }

    private static String database(SparkSession session, TableIdentifier name) {
        return name.database().isDefined() ? name.database().get() : session.sessionState().catalog().getCurrentDatabase();
    }
}

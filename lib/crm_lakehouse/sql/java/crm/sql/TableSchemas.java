package crm.sql;

import java.util.Arrays;
import java.util.Set;

import org.apache.spark.sql.SparkSession;
import org.apache.spark.sql.catalyst.TableIdentifier;
import org.apache.spark.sql.catalyst.catalog.CatalogTable;
import org.apache.spark.sql.catalyst.catalog.CatalogTableType;
import org.apache.spark.sql.catalyst.catalog.SessionCatalog;
import org.apache.spark.sql.types.StructField;
import org.apache.spark.sql.types.StructType;

import scala.Option;
import scala.jdk.javaapi.CollectionConverters;

/**
 * Puts a Delta table's columns into its catalog entry, for clients that browse the catalog.
 *
 * A Delta table keeps its schema in its log; the catalog entry that names it often has none
 * (a table registered by location always, one made by CREATE TABLE AS SELECT too). Spark answers
 * reads and DESCRIBE from the log, but the Thrift server answers JDBC {@code getColumns} from the
 * catalog entry, so BI tools saw tables without columns. The copy is metadata only: every
 * query still reads the log.
 */
public final class TableSchemas {

    private TableSchemas() {
    }

    /** Copies the schema from the log when the catalog's differs; returns whether it did. */
    public static boolean publish(SparkSession session, String schema, String table) throws Exception {
        TableIdentifier name = new TableIdentifier(table, Option.apply(schema));
        SessionCatalog catalog = session.sessionState().catalog();
        CatalogTable entry = catalog.getTableMetadata(name);
        if (entry.tableType() == CatalogTableType.VIEW()) {
            return false;
        }
        StructType actual = session.table(name.quotedString()).schema();
        // The catalog adds its partition columns itself; pass only the others.
        Set<String> partitions = Set.copyOf(CollectionConverters.asJava(entry.partitionColumnNames()));
        StructType data = new StructType(Arrays.stream(actual.fields())
            .filter(field -> !partitions.contains(field.name())).toArray(StructField[]::new));
        if (entry.dataSchema().equals(data)) {
            return false;
        }
        catalog.alterTableDataSchema(name, data);
        return true;
    }
}

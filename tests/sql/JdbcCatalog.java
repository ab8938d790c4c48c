import java.sql.Connection;
import java.sql.DatabaseMetaData;
import java.sql.DriverManager;
import java.sql.ResultSet;

/**
 * A JDBC client browsing the catalog as BI tools do: every table of a schema (getTables), then
 * its columns (getColumns). Prints "table<TAB>column<TAB>type<TAB>remarks" lines.
 * Usage: java JdbcCatalog jdbc-url user password schema
 */
public final class JdbcCatalog {
    public static void main(String[] args) throws Exception {
        Class.forName("org.apache.hive.jdbc.HiveDriver");
        try (Connection connection = DriverManager.getConnection(args[0], args[1], args[2])) {
            DatabaseMetaData metadata = connection.getMetaData();
            try (ResultSet tables = metadata.getTables(null, args[3], "%", null)) {
                while (tables.next()) {
                    String table = tables.getString("TABLE_NAME");
                    try (ResultSet columns = metadata.getColumns(null, args[3], table, "%")) {
                        while (columns.next()) {
                            System.out.println(table + "\t" + columns.getString("COLUMN_NAME") + "\t"
                                + columns.getString("TYPE_NAME") + "\t" + columns.getString("REMARKS"));
                        }
                    }
                }
            }
        }
    }
}

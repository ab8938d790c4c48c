/*
 * Licensed to the Apache Software Foundation (ASF) under one
 * or more contributor license agreements.  See the NOTICE file
 * distributed with this work for additional information
 * regarding copyright ownership.  The ASF licenses this file
 * to you under the Apache License, Version 2.0 (the
 * "License"); you may not use this file except in compliance
 * with the License.  You may obtain a copy of the License at
 *
 *     http://www.apache.org/licenses/LICENSE-2.0
 *
 * Unless required by applicable law or agreed to in writing, software
 * distributed under the License is distributed on an "AS IS" BASIS,
 * WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
 * See the License for the specific language governing permissions and
 * limitations under the License.
 */

package org.apache.hive.service.cli;

import java.io.PrintWriter;
import java.sql.SQLException;
import java.util.ArrayList;
import java.util.List;

import org.apache.hive.service.rpc.thrift.TStatus;
import org.apache.hive.service.rpc.thrift.TStatusCode;

/**
 * HiveServer2's error, as in spark-hive-thriftserver 4.2 (from Apache Hive), with one change:
 * what it sends a client names each exception and its message but no stack frames. The frames
 * showed the server's classes, files and lines to every client; the server log keeps them
 * (SparkExecuteStatementOperation and ThriftCLIService log the whole trace). The endpoint's jar
 * is first on the server's class path, so this class replaces the one in Spark's jar.
 *
 * The wire format is unchanged, "*class:message:frames:last" per exception, now with
 * "0:-1" (no frames), which clients' {@link #toCause} and Hive's JDBC driver read as before.
 */
public class HiveSQLException extends SQLException {

    private static final long serialVersionUID = -6095254671958748094L;

    public HiveSQLException() {
        super();
    }

    public HiveSQLException(String reason) {
        super(reason);
    }

    public HiveSQLException(Throwable cause) {
        super(cause);
    }

    public HiveSQLException(String reason, String sqlState) {
        super(reason, sqlState);
    }

    public HiveSQLException(String reason, Throwable cause) {
        super(reason, cause);
    }

    public HiveSQLException(String reason, String sqlState, int vendorCode) {
        super(reason, sqlState, vendorCode);
    }

    public HiveSQLException(String reason, String sqlState, Throwable cause) {
        super(reason, sqlState, cause);
    }

    public HiveSQLException(String reason, String sqlState, int vendorCode, Throwable cause) {
        super(reason, sqlState, vendorCode, cause);
    }

    public HiveSQLException(TStatus status) {
        super(status.getErrorMessage(), status.getSqlState(), status.getErrorCode());
        if (status.getInfoMessages() != null && !status.getInfoMessages().isEmpty()) {
            initCause(toCause(status.getInfoMessages()));
        }
    }

    public TStatus toTStatus() {
        TStatus tStatus = new TStatus(TStatusCode.ERROR_STATUS);
        tStatus.setSqlState(getSQLState());
        tStatus.setErrorCode(getErrorCode());
        tStatus.setErrorMessage(forClient(getMessage()));
        tStatus.setInfoMessages(toString(this));
        return tStatus;
    }

    public static TStatus toTStatus(Exception e) {
        if (e instanceof HiveSQLException) {
            return ((HiveSQLException) e).toTStatus();
        }
        TStatus tStatus = new TStatus(TStatusCode.ERROR_STATUS);
        tStatus.setErrorMessage(forClient(e.getMessage()));
        tStatus.setInfoMessages(toString(e));
        return tStatus;
    }

    /** Each exception of the chain as "*class:message:0:-1": what happened, not where in the server. */
    public static List<String> toString(Throwable ex) {
        List<String> details = new ArrayList<>();
        for (Throwable cause = ex; cause != null && details.size() < 20; cause = cause.getCause()) {
            details.add("*" + cause.getClass().getName() + ":" + forClient(cause.getMessage()) + ":0:-1");
            if (cause.getCause() == cause) {
                break;
            }
        }
        return details;
    }

    public static Throwable toCause(List<String> details) {
        return toStackTrace(details, null, 0);
    }

    private static Throwable toStackTrace(List<String> details, StackTraceElement[] parent, int index) {
        String detail = details.get(index++);
        if (!detail.startsWith("*")) {
            return null;
        }
        int i1 = detail.indexOf(':');
        int i3 = detail.lastIndexOf(':');
        int i2 = detail.substring(0, i3).lastIndexOf(':');
        String exceptionClass = detail.substring(1, i1);
        String exceptionMessage = detail.substring(i1 + 1, i2);
        Throwable ex = newInstance(exceptionClass, exceptionMessage);

        int length = Integer.parseInt(detail.substring(i2 + 1, i3));
        int unique = Integer.parseInt(detail.substring(i3 + 1));

        int i = 0;
        StackTraceElement[] trace = new StackTraceElement[length];
        for (; i <= unique; i++) {
            detail = details.get(index++);
            int j1 = detail.indexOf(':');
            int j3 = detail.lastIndexOf(':');
            int j2 = detail.substring(0, j3).lastIndexOf(':');
            String className = detail.substring(0, j1);
            String methodName = detail.substring(j1 + 1, j2);
            String fileName = detail.substring(j2 + 1, j3);
            if (fileName.isEmpty()) {
                fileName = null;
            }
            int lineNumber = Integer.parseInt(detail.substring(j3 + 1));
            trace[i] = new StackTraceElement(className, methodName, fileName, lineNumber);
        }
        int common = trace.length - i;
        if (common > 0 && parent != null) {
            System.arraycopy(parent, parent.length - common, trace, trace.length - common, common);
        }
        if (details.size() > index) {
            ex.initCause(toStackTrace(details, trace, index));
        }
        ex.setStackTrace(trace);
        return ex;
    }

    private static Throwable newInstance(String className, String message) {
        try {
            return (Throwable) Class.forName(className).getConstructor(String.class).newInstance(message);
        } catch (Exception e) {
            return new RuntimeException(className + ":" + message);
        }
    }

    /**
     * A failed asynchronous statement reaches the client as the operation status's error message,
     * which ThriftCLIService fills with Spark's {@code Utils.stringifyException}: the whole
     * printed trace. For that caller only, print the exception chain without frames; every other
     * caller (the server's log) gets the full trace.
     */
    @Override
    public void printStackTrace(PrintWriter writer) {
        if (!printedForClient()) {
            super.printStackTrace(writer);
            return;
        }
        writer.println(getClass().getName() + ": " + forClient(getMessage()));
        Throwable cause = getCause();
        for (int depth = 0; cause != null && depth < 20; depth++, cause = cause.getCause()) {
            writer.println("Caused by: " + cause.getClass().getName() + ": " + forClient(cause.getMessage()));
            if (cause.getCause() == cause) {
                break;
            }
        }
    }

    /**
     * A message without the plan Spark appends to an analysis error after "; line L pos P;": the
     * plan of a view shows the tables' folders and the raw columns behind its masks.
     */
    static String forClient(String message) {
        if (message == null) {
            return null;
        }
        int plan = message.indexOf(";\n");
        return plan < 0 ? message : message.substring(0, plan + 1);
    }

    private static boolean printedForClient() {
        return StackWalker.getInstance().walk(frames -> frames.limit(8)
            .anyMatch(frame -> frame.getMethodName().equals("stringifyException")));
    }
}

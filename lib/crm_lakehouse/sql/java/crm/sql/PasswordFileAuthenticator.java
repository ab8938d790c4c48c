package crm.sql;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.security.spec.InvalidKeySpecException;
import java.util.ArrayDeque;
import java.util.Deque;
import java.util.HexFormat;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;

import javax.crypto.SecretKeyFactory;
import javax.crypto.spec.PBEKeySpec;
import javax.security.sasl.AuthenticationException;

import org.apache.hive.service.auth.PasswdAuthenticationProvider;

/**
 * HiveServer2 CUSTOM authentication against a file of salted password hashes.
 *
 * The file (path in the environment variable CRM_SQL_PASSWORD_FILE) holds one user per line,
 * {@code user:pbkdf2_sha256$iterations$salt_hex$hash_hex}, as {@code crm-lakehouse sql-user add}
 * writes it; blank lines and lines starting with # are ignored. It is read on every login, so
 * adding or removing a user needs no restart. Passwords are never stored, only PBKDF2 hashes.
 *
 * After {@value #MAX_FAILURES} failed logins for one user name within {@value #WINDOW_SECONDS}
 * seconds, further logins for that name are refused unchecked until the oldest failure leaves the
 * window. Per user name only: HiveServer2 checks the password during the SASL handshake, before
 * it knows the client's address.
 */
public final class PasswordFileAuthenticator implements PasswdAuthenticationProvider {

    public static final String FILE_VARIABLE = "CRM_SQL_PASSWORD_FILE";
    static final int MAX_FAILURES = 5;
    static final long WINDOW_SECONDS = 60;
    static final int MAX_TRACKED_NAMES = 10_000;

    // Hive makes a new authenticator per login: the failures live with the class.
    private static final Map<String, Deque<Long>> FAILURES = new ConcurrentHashMap<>();

    @Override
    public void Authenticate(String user, String password) throws AuthenticationException {
        String name = user == null ? "" : user;
        Deque<Long> failures = FAILURES.computeIfAbsent(name, key -> new ArrayDeque<>());
        synchronized (failures) {
            long now = System.nanoTime();
            while (!failures.isEmpty() && now - failures.peekFirst() > WINDOW_SECONDS * 1_000_000_000L) {
                failures.pollFirst();
            }
            if (failures.size() >= MAX_FAILURES) {
                long wait = WINDOW_SECONDS - (now - failures.peekFirst()) / 1_000_000_000L;
                throw new AuthenticationException("too many failed logins for user '" + name + "' ("
                    + failures.size() + " in " + WINDOW_SECONDS + " s); try again in " + Math.max(wait, 1) + " s");
            }
        }
        try {
            check(name, password);
            synchronized (failures) {
                failures.clear();
            }
        } catch (AuthenticationException e) {
            synchronized (failures) {
                failures.addLast(System.nanoTime());
            }
            if (FAILURES.size() > MAX_TRACKED_NAMES) {
                forgetQuietNames();
            }
            throw e;
        }
    }

    /** Drops the names with no failure inside the window, so guessing many names cannot fill memory. */
    private static void forgetQuietNames() {
        long now = System.nanoTime();
        FAILURES.entrySet().removeIf(entry -> {
            synchronized (entry.getValue()) {
                Long last = entry.getValue().peekLast();
                return last == null || now - last > WINDOW_SECONDS * 1_000_000_000L;
            }
        });
    }

    private static void check(String user, String password) throws AuthenticationException {
        String file = System.getenv(FILE_VARIABLE);
        if (file == null || file.isEmpty()) {
            throw new AuthenticationException("no password file: " + FILE_VARIABLE + " is not set on the server");
        }
        String stored = null;
        try {
            for (String line : Files.readAllLines(Path.of(file), StandardCharsets.UTF_8)) {
                String entry = line.strip();
                if (entry.isEmpty() || entry.startsWith("#")) {
                    continue;
                }
                int colon = entry.indexOf(':');
                if (colon > 0 && entry.substring(0, colon).equals(user)) {
                    stored = entry.substring(colon + 1);
                }
            }
        } catch (IOException e) {
            throw new AuthenticationException("cannot read the password file " + file, e);
        }
        if (stored == null || password == null || !matches(password, stored)) {
            // The same answer for an unknown user and a wrong password.
            throw new AuthenticationException("invalid user name or password");
        }
    }

    static boolean matches(String password, String stored) throws AuthenticationException {
        String[] parts = stored.split("\\$");
        if (parts.length != 4 || !parts[0].equals("pbkdf2_sha256")) {
            throw new AuthenticationException("unsupported password hash format");
        }
        try {
            int iterations = Integer.parseInt(parts[1]);
            byte[] salt = HexFormat.of().parseHex(parts[2]);
            byte[] expected = HexFormat.of().parseHex(parts[3]);
            PBEKeySpec spec = new PBEKeySpec(password.toCharArray(), salt, iterations, expected.length * 8);
            byte[] actual = SecretKeyFactory.getInstance("PBKDF2WithHmacSHA256").generateSecret(spec).getEncoded();
            return MessageDigest.isEqual(expected, actual);
        } catch (NumberFormatException | NoSuchAlgorithmException | InvalidKeySpecException e) {
            throw new AuthenticationException("unreadable password hash", e);
        }
    }
}

// Golden-vector driver for Canopy.
//
// Drives the real Apache ZooKeeper 3.8 Java client through the recording
// proxy (record.py) so that every request/response/notification the client
// can produce is captured byte for byte.  Compiled and run by record.sh:
//
//   java GoldenDriver <proxyHost:port> <proxyControlPort> <directHost:port> [scenario...]
//
// The proxy's control port is used to name each connection's file
// ("label NAME"), to annotate the files with the step being performed
// ("note TEXT"), and to cut / refuse connections for the reconnect
// scenarios.  Setup and out-of-band changes that must not appear in the
// recordings go over a direct (unrecorded) connection to the server.

import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.io.OutputStreamWriter;
import java.io.PrintWriter;
import java.net.Socket;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;

import org.apache.zookeeper.AddWatchMode;
import org.apache.zookeeper.CreateMode;
import org.apache.zookeeper.KeeperException;
import org.apache.zookeeper.Op;
import org.apache.zookeeper.OpResult;
import org.apache.zookeeper.WatchedEvent;
import org.apache.zookeeper.Watcher;
import org.apache.zookeeper.ZooDefs;
import org.apache.zookeeper.ZooKeeper;
import org.apache.zookeeper.admin.ZooKeeperAdmin;
import org.apache.zookeeper.data.ACL;
import org.apache.zookeeper.data.Id;
import org.apache.zookeeper.data.Stat;
import org.apache.zookeeper.proto.CheckVersionRequest;
import org.apache.zookeeper.proto.CreateRequest;
import org.apache.zookeeper.proto.CreateResponse;
import org.apache.zookeeper.proto.CreateTTLRequest;
import org.apache.zookeeper.proto.GetDataRequest;
import org.apache.zookeeper.proto.GetDataResponse;
import org.apache.zookeeper.proto.ReplyHeader;
import org.apache.zookeeper.proto.RequestHeader;
import org.apache.zookeeper.server.auth.DigestAuthenticationProvider;

public class GoldenDriver {
    static final List<ACL> OPEN = ZooDefs.Ids.OPEN_ACL_UNSAFE;
    static final int LONG_TIMEOUT = 30000; // no pings during normal scenarios
    static final int SHORT_TIMEOUT = 4000; // = 2 * tickTime, the minimum

    static String proxy;
    static String direct;
    static Control ctl;
    static ZooKeeper admin; // direct, unrecorded
    static int failures = 0;

    // ------------------------------------------------------------------
    // proxy control channel

    static final class Control {
        final Socket sock;
        final BufferedReader in;
        final PrintWriter out;

        Control(int port) throws Exception {
            sock = new Socket("127.0.0.1", port);
            in = new BufferedReader(new InputStreamReader(sock.getInputStream(), StandardCharsets.UTF_8));
            out = new PrintWriter(new OutputStreamWriter(sock.getOutputStream(), StandardCharsets.UTF_8), true);
        }

        synchronized String cmd(String line) throws Exception {
            out.println(line);
            String reply = in.readLine();
            if (reply == null || !reply.startsWith("ok")) {
                throw new IllegalStateException("proxy said " + reply + " to " + line);
            }
            return reply;
        }
    }

    static void label(String name) throws Exception {
        ctl.cmd("label " + name);
    }

    /** Annotate every open recorded connection with the step about to run. */
    static void step(String text) throws Exception {
        System.out.println("  - " + text);
        ctl.cmd("note step: " + text);
    }

    // ------------------------------------------------------------------
    // watchers and connections

    /** Records every event it sees; lets the driver wait for states/events. */
    static final class Events implements Watcher {
        final String name;
        final LinkedBlockingQueue<WatchedEvent> queue = new LinkedBlockingQueue<>();
        volatile CountDownLatch connected = new CountDownLatch(1);

        Events(String name) {
            this.name = name;
        }

        @Override
        public void process(WatchedEvent e) {
            System.out.println("    [" + name + "] event " + e.getState() + " " + e.getType() + " " + e.getPath());
            if (e.getType() == Event.EventType.None) {
                if (e.getState() == Event.KeeperState.SyncConnected) {
                    connected.countDown();
                }
            }
            queue.add(e);
        }

        /** Wait for a state change (type None) with the given state. */
        void awaitState(Event.KeeperState state, long ms) throws Exception {
            long deadline = System.currentTimeMillis() + ms;
            while (true) {
                long left = deadline - System.currentTimeMillis();
                WatchedEvent e = left > 0 ? queue.poll(left, TimeUnit.MILLISECONDS) : null;
                if (e == null) {
                    throw new IllegalStateException(name + ": no " + state + " within " + ms + "ms");
                }
                if (e.getType() == Event.EventType.None && e.getState() == state) {
                    return;
                }
            }
        }

        /** Wait for n node events (type != None), returning them. */
        List<WatchedEvent> awaitNodeEvents(int n, long ms) throws Exception {
            List<WatchedEvent> got = new ArrayList<>();
            long deadline = System.currentTimeMillis() + ms;
            while (got.size() < n) {
                long left = deadline - System.currentTimeMillis();
                WatchedEvent e = left > 0 ? queue.poll(left, TimeUnit.MILLISECONDS) : null;
                if (e == null) {
                    throw new IllegalStateException(name + ": only " + got.size() + " of " + n + " events");
                }
                if (e.getType() != Event.EventType.None) {
                    got.add(e);
                }
            }
            return got;
        }
    }

    /** Subclass giving access to the raw ClientCnxn for hand-made requests. */
    static final class RawZooKeeper extends ZooKeeper {
        RawZooKeeper(String cs, int timeout, Watcher w) throws Exception {
            super(cs, timeout, w);
        }

        ReplyHeader raw(int type, org.apache.jute.Record req, org.apache.jute.Record resp) throws Exception {
            RequestHeader h = new RequestHeader();
            h.setType(type);
            return cnxn.submitRequest(h, req, resp, null);
        }
    }

    /** Open a recorded connection named `name` and wait until connected. */
    static ZooKeeper open(String name, int timeout, Events w) throws Exception {
        label(name);
        ZooKeeper zk = new ZooKeeper(proxy, timeout, w);
        if (!w.connected.await(20, TimeUnit.SECONDS)) {
            throw new IllegalStateException("could not connect " + name);
        }
        w.awaitState(Watcher.Event.KeeperState.SyncConnected, 1000);
        return zk;
    }

    static void close(String name, ZooKeeper zk) throws Exception {
        step("close (closeSession) " + name);
        zk.close();
        ctl.cmd("wait " + name + " 10");
    }

    static byte[] b(String s) {
        return s == null ? null : s.getBytes(StandardCharsets.UTF_8);
    }

    static String s(byte[] b) {
        return b == null ? "null" : new String(b, StandardCharsets.UTF_8);
    }

    /** Run an operation expected to fail; returns the code (for the log). */
    interface Action {
        void run() throws Exception;
    }

    static void expectError(String what, KeeperException.Code expected, Action a) throws Exception {
        step(what + " -> expect " + expected);
        try {
            a.run();
            System.out.println("    UNEXPECTED success");
        } catch (KeeperException e) {
            System.out.println("    got " + e.code());
            if (e.code() != expected) {
                System.out.println("    (expected " + expected + ")");
            }
        }
    }

    /** Direct (unrecorded) helper: create a node, parents must exist. */
    static void setup(String path, String data) throws Exception {
        try {
            admin.create(path, b(data), OPEN, CreateMode.PERSISTENT);
        } catch (KeeperException.NodeExistsException e) {
            admin.setData(path, b(data), -1);
        }
    }

    // ------------------------------------------------------------------
    // scenarios

    static void connectClose() throws Exception {
        Events w = new Events("c");
        step("connect (ConnectRequest, sessionId 0, timeout " + LONG_TIMEOUT + ")");
        ZooKeeper zk = open("connect-close", LONG_TIMEOUT, w);
        close("connect-close", zk);
    }

    static void connectReadOnly() throws Exception {
        Events w = new Events("ro");
        label("connect-readonly");
        ZooKeeper zk = new ZooKeeper(proxy, LONG_TIMEOUT, w, true);
        w.connected.await(20, TimeUnit.SECONDS);
        step("connected with canBeReadOnly=true");
        close("connect-readonly", zk);
    }

    static void createModes() throws Exception {
        setup("/modes", "m");
        Events w = new Events("modes");
        ZooKeeper zk = open("create-modes", LONG_TIMEOUT, w);
        Stat st = new Stat();
        step("create /modes/persistent PERSISTENT (op 1)");
        zk.create("/modes/persistent", b("p"), OPEN, CreateMode.PERSISTENT);
        step("create /modes/ephemeral EPHEMERAL (op 1, flags 1)");
        zk.create("/modes/ephemeral", b("e"), OPEN, CreateMode.EPHEMERAL);
        step("create /modes/seq- PERSISTENT_SEQUENTIAL (op 1, flags 2)");
        zk.create("/modes/seq-", b("s"), OPEN, CreateMode.PERSISTENT_SEQUENTIAL);
        step("create /modes/eseq- EPHEMERAL_SEQUENTIAL (op 1, flags 3)");
        zk.create("/modes/eseq-", b("es"), OPEN, CreateMode.EPHEMERAL_SEQUENTIAL);
        step("create /modes/container CONTAINER (createContainer op 19, flags 4)");
        zk.create("/modes/container", b("c"), OPEN, CreateMode.CONTAINER);
        step("create /modes/ttl PERSISTENT_WITH_TTL ttl=60000 (createTTL op 21, flags 5)");
        zk.create("/modes/ttl", b("t"), OPEN, CreateMode.PERSISTENT_WITH_TTL, st, 60000);
        step("create /modes/ttlseq- PERSISTENT_SEQUENTIAL_WITH_TTL ttl=90000 (createTTL op 21, flags 6)");
        zk.create("/modes/ttlseq-", b("ts"), OPEN, CreateMode.PERSISTENT_SEQUENTIAL_WITH_TTL, st, 90000);
        step("create2 /modes/create2 PERSISTENT with Stat (op 15)");
        zk.create("/modes/create2", b("c2"), OPEN, CreateMode.PERSISTENT, st);
        step("create2 /modes/c2eseq- EPHEMERAL_SEQUENTIAL with Stat (op 15)");
        zk.create("/modes/c2eseq-", b("c2es"), OPEN, CreateMode.EPHEMERAL_SEQUENTIAL, st);
        step("create /modes/container2 CONTAINER with Stat (op 19, Create2Response)");
        zk.create("/modes/container2", b("c2c"), OPEN, CreateMode.CONTAINER, st);
        step("create /modes/nulldata with null data (buffer length -1)");
        zk.create("/modes/nulldata", null, OPEN, CreateMode.PERSISTENT);
        step("create /modes/empty with empty data (buffer length 0)");
        zk.create("/modes/empty", new byte[0], OPEN, CreateMode.PERSISTENT);
        step("getData /modes/nulldata (null data)");
        System.out.println("    data=" + s(zk.getData("/modes/nulldata", false, st)));
        step("getData /modes/empty");
        zk.getData("/modes/empty", false, st);
        step("getData /modes/ttl (the server reports ephemeralOwner 0 for TTL nodes)");
        zk.getData("/modes/ttl", false, st);
        System.out.println("    ttl ephemeralOwner=0x" + Long.toHexString(st.getEphemeralOwner()));
        step("getData /modes/container (ephemeralOwner 0 for containers too)");
        zk.getData("/modes/container", false, st);
        System.out.println("    container ephemeralOwner=0x" + Long.toHexString(st.getEphemeralOwner()));
        step("getChildren /modes");
        System.out.println("    " + zk.getChildren("/modes", false));
        close("create-modes", zk);
    }

    static void crud() throws Exception {
        setup("/crud", "root");
        setup("/crud/a", "A");
        setup("/crud/b", "B");
        Events w = new Events("crud");
        ZooKeeper zk = open("crud", LONG_TIMEOUT, w);
        Stat st = new Stat();
        step("exists /crud (present)");
        zk.exists("/crud", false);
        step("exists /crud/missing (absent: err NoNode in the reply header)");
        zk.exists("/crud/missing", false);
        step("getData /crud");
        zk.getData("/crud", false, st);
        step("setData /crud 'root2' version -1");
        zk.setData("/crud", b("root2"), -1);
        step("setData /crud 'root3' version 1");
        zk.setData("/crud", b("root3"), 1);
        step("getData /crud (version 2)");
        zk.getData("/crud", false, st);
        step("getACL /crud");
        zk.getACL("/crud", st);
        step("setACL /crud/b [world:anyone perms 31, ip:127.0.0.1 perms 1] version 0");
        List<ACL> acl = new ArrayList<>();
        acl.add(new ACL(ZooDefs.Perms.ALL, ZooDefs.Ids.ANYONE_ID_UNSAFE));
        acl.add(new ACL(ZooDefs.Perms.READ, new Id("ip", "127.0.0.1")));
        zk.setACL("/crud/b", acl, 0);
        step("getACL /crud/b");
        zk.getACL("/crud/b", st);
        step("getChildren /crud (op 8)");
        zk.getChildren("/crud", false);
        step("getChildren2 /crud with Stat (op 12)");
        zk.getChildren("/crud", false, st);
        step("getChildren / (root)");
        zk.getChildren("/", false);
        step("sync /crud (op 9)");
        CountDownLatch synced = new CountDownLatch(1);
        zk.sync("/crud", (rc, path, ctx) -> synced.countDown(), null);
        synced.await(10, TimeUnit.SECONDS);
        step("getAllChildrenNumber /crud (op 104)");
        System.out.println("    " + zk.getAllChildrenNumber("/crud"));
        step("getAllChildrenNumber / (op 104)");
        System.out.println("    " + zk.getAllChildrenNumber("/"));
        step("create /crud/eph EPHEMERAL 'E'");
        zk.create("/crud/eph", b("E"), OPEN, CreateMode.EPHEMERAL);
        step("getEphemerals / (op 103)");
        System.out.println("    " + zk.getEphemerals());
        step("getEphemerals /crud (prefix)");
        System.out.println("    " + zk.getEphemerals("/crud"));
        step("getEphemerals /nothere (empty list)");
        System.out.println("    " + zk.getEphemerals("/nothere"));
        step("whoAmI (op 107)");
        System.out.println("    " + zk.whoAmI());
        step("getConfig (getData /zookeeper/config)");
        System.out.println("    config=" + s(zk.getConfig(false, st)));
        step("getData /zookeeper/quota");
        zk.getData("/zookeeper/quota", false, st);
        step("delete /crud/a version -1 (op 2)");
        zk.delete("/crud/a", -1);
        step("delete /crud/b version 0");
        zk.delete("/crud/b", 0);
        step("delete /crud/eph version 0");
        zk.delete("/crud/eph", 0);
        close("crud", zk);
    }

    static void errors() throws Exception {
        setup("/err", "err");
        setup("/err/c", "c");
        setup("/err/v", "v");
        Events w = new Events("err");
        ZooKeeper zk = open("errors", LONG_TIMEOUT, w);
        Stat st = new Stat();
        expectError("getData /err/missing", KeeperException.Code.NONODE, () -> zk.getData("/err/missing", false, st));
        expectError("getChildren /err/missing", KeeperException.Code.NONODE, () -> zk.getChildren("/err/missing", false));
        expectError("getChildren2 /err/missing", KeeperException.Code.NONODE, () -> zk.getChildren("/err/missing", false, st));
        expectError("getACL /err/missing", KeeperException.Code.NONODE, () -> zk.getACL("/err/missing", st));
        expectError("delete /err/missing", KeeperException.Code.NONODE, () -> zk.delete("/err/missing", -1));
        expectError("setData /err/missing", KeeperException.Code.NONODE, () -> zk.setData("/err/missing", b("x"), -1));
        expectError("create /err/nope/child (parent missing)", KeeperException.Code.NONODE,
                () -> zk.create("/err/nope/child", b("x"), OPEN, CreateMode.PERSISTENT));
        expectError("create2 /err/nope/child (parent missing)", KeeperException.Code.NONODE,
                () -> zk.create("/err/nope/child", b("x"), OPEN, CreateMode.PERSISTENT, st));
        expectError("create /err/c (exists)", KeeperException.Code.NODEEXISTS,
                () -> zk.create("/err/c", b("x"), OPEN, CreateMode.PERSISTENT));
        expectError("create2 /err/c (exists)", KeeperException.Code.NODEEXISTS,
                () -> zk.create("/err/c", b("x"), OPEN, CreateMode.PERSISTENT, st));
        expectError("setData /err/v version 7", KeeperException.Code.BADVERSION, () -> zk.setData("/err/v", b("v7"), 7));
        expectError("delete /err/v version 7", KeeperException.Code.BADVERSION, () -> zk.delete("/err/v", 7));
        expectError("setACL /err/v version 7", KeeperException.Code.BADVERSION, () -> zk.setACL("/err/v", OPEN, 7));
        expectError("delete /err (has children)", KeeperException.Code.NOTEMPTY, () -> zk.delete("/err", -1));
        step("create /err/eph EPHEMERAL");
        zk.create("/err/eph", b("eph"), OPEN, CreateMode.EPHEMERAL);
        expectError("create /err/eph/kid (under ephemeral)", KeeperException.Code.NOCHILDRENFOREPHEMERALS,
                () -> zk.create("/err/eph/kid", b("k"), OPEN, CreateMode.PERSISTENT));
        expectError("create /err/creator with CREATOR_ALL_ACL and no auth", KeeperException.Code.INVALIDACL,
                () -> zk.create("/err/creator", b("x"), ZooDefs.Ids.CREATOR_ALL_ACL, CreateMode.PERSISTENT));
        expectError("create /err/emptyacl with an empty ACL list", KeeperException.Code.INVALIDACL,
                () -> zk.create("/err/emptyacl", b("x"), new ArrayList<>(), CreateMode.PERSISTENT));
        expectError("create /err/badscheme with ACL scheme 'nosuch'", KeeperException.Code.INVALIDACL,
                () -> zk.create("/err/badscheme", b("x"),
                        Arrays.asList(new ACL(ZooDefs.Perms.ALL, new Id("nosuch", "x"))), CreateMode.PERSISTENT));
        step("create /zookeeper/x under the system node (3.8 allows it)");
        try {
            zk.create("/zookeeper/x", b("x"), OPEN, CreateMode.PERSISTENT);
        } catch (KeeperException e) {
            System.out.println("    got " + e.code());
        }
        close("errors", zk);
    }

    static void multi() throws Exception {
        setup("/multi", "multi");
        Events w = new Events("multi");
        ZooKeeper zk = open("multi", LONG_TIMEOUT, w);
        step("multi OK: create /multi/a, create /multi/b EPHEMERAL, create /multi/t TTL, setData /multi/a, check /multi/a v1, delete /multi/b");
        List<OpResult> r = zk.multi(Arrays.asList(
                Op.create("/multi/a", b("ma"), OPEN, CreateMode.PERSISTENT),
                Op.create("/multi/b", b("mb"), OPEN, CreateMode.EPHEMERAL),
                Op.create("/multi/t", b("mt"), OPEN, CreateMode.PERSISTENT_WITH_TTL, 60000),
                Op.setData("/multi/a", b("ma2"), 0),
                Op.check("/multi/a", 1),
                Op.delete("/multi/b", -1)));
        System.out.println("    " + r.size() + " results");
        step("multi FAIL at op 2: create /multi/c, setData /multi/a version 99 (BadVersion), delete /multi/a");
        try {
            zk.multi(Arrays.asList(
                    Op.create("/multi/c", b("mc"), OPEN, CreateMode.PERSISTENT),
                    Op.setData("/multi/a", b("bad"), 99),
                    Op.delete("/multi/a", -1)));
        } catch (KeeperException e) {
            System.out.println("    got " + e.code() + " results=" + describe(e.getResults()));
        }
        step("multi FAIL at op 1: check /multi/missing, create /multi/d");
        try {
            zk.multi(Arrays.asList(
                    Op.check("/multi/missing", 0),
                    Op.create("/multi/d", b("md"), OPEN, CreateMode.PERSISTENT)));
        } catch (KeeperException e) {
            System.out.println("    got " + e.code() + " results=" + describe(e.getResults()));
        }
        step("multi FAIL at last op: create /multi/e, create /multi/a (NodeExists)");
        try {
            zk.multi(Arrays.asList(
                    Op.create("/multi/e", b("me"), OPEN, CreateMode.PERSISTENT),
                    Op.create("/multi/a", b("dup"), OPEN, CreateMode.PERSISTENT)));
        } catch (KeeperException e) {
            System.out.println("    got " + e.code() + " results=" + describe(e.getResults()));
        }
        step("multi with no ops: the Java client answers locally, nothing is sent");
        System.out.println("    " + zk.multi(new ArrayList<Op>()).size() + " results");
        step("multiRead OK (op 22): getData /multi/a, getChildren /multi");
        r = zk.multi(Arrays.asList(Op.getData("/multi/a"), Op.getChildren("/multi")));
        System.out.println("    " + describe(r));
        step("multiRead with failures: getData /multi/a, getData /multi/missing, getChildren /multi/missing, getChildren /multi");
        r = zk.multi(Arrays.asList(Op.getData("/multi/a"), Op.getData("/multi/missing"),
                Op.getChildren("/multi/missing"), Op.getChildren("/multi")));
        System.out.println("    " + describe(r));
        step("transaction(): setData /multi/a, delete /multi/t");
        zk.transaction().setData("/multi/a", b("ma3"), -1).delete("/multi/t", -1).commit();
        close("multi", zk);
    }

    static String describe(List<OpResult> rs) {
        if (rs == null) {
            return "null";
        }
        StringBuilder sb = new StringBuilder("[");
        for (OpResult r : rs) {
            sb.append(r.getClass().getSimpleName());
            if (r instanceof OpResult.ErrorResult) {
                sb.append('(').append(((OpResult.ErrorResult) r).getErr()).append(')');
            }
            sb.append(' ');
        }
        return sb.append(']').toString();
    }

    static void auth() throws Exception {
        setup("/acl", "acl");
        Events w = new Events("auth");
        ZooKeeper zk = open("auth", LONG_TIMEOUT, w);
        step("addAuth digest alice:secret (xid -4, op 100)");
        zk.addAuthInfo("digest", b("alice:secret"));
        step("create /acl/creator 'secret' CREATOR_ALL_ACL (auth:: -> digest:alice:...)");
        zk.create("/acl/creator", b("secret"), ZooDefs.Ids.CREATOR_ALL_ACL, CreateMode.PERSISTENT);
        step("create /acl/readonly 'ro' READ_ACL_UNSAFE");
        zk.create("/acl/readonly", b("ro"), ZooDefs.Ids.READ_ACL_UNSAFE, CreateMode.PERSISTENT);
        String bob = DigestAuthenticationProvider.generateDigest("bob:pw");
        step("create /acl/bob with ACL digest:" + bob + " ALL");
        zk.create("/acl/bob", b("bob"), Arrays.asList(new ACL(ZooDefs.Perms.ALL, new Id("digest", bob))),
                CreateMode.PERSISTENT);
        step("getACL /acl/creator");
        zk.getACL("/acl/creator", new Stat());
        step("getData /acl/creator (allowed)");
        zk.getData("/acl/creator", false, null);
        step("whoAmI (ip + digest identities)");
        System.out.println("    " + zk.whoAmI());
        expectError("getData /acl/bob as alice", KeeperException.Code.NOAUTH, () -> zk.getData("/acl/bob", false, null));

        Events w2 = new Events("noauth");
        ZooKeeper other = open("auth-noauth", LONG_TIMEOUT, w2);
        expectError("getData /acl/creator without auth", KeeperException.Code.NOAUTH,
                () -> other.getData("/acl/creator", false, null));
        expectError("setData /acl/readonly (world read only)", KeeperException.Code.NOAUTH,
                () -> other.setData("/acl/readonly", b("x"), -1));
        expectError("create /acl/readonly/kid (no CREATE perm)", KeeperException.Code.NOAUTH,
                () -> other.create("/acl/readonly/kid", b("k"), OPEN, CreateMode.PERSISTENT));
        expectError("getChildren /acl/creator without auth", KeeperException.Code.NOAUTH,
                () -> other.getChildren("/acl/creator", false));
        expectError("setACL /acl/creator without auth", KeeperException.Code.NOAUTH,
                () -> other.setACL("/acl/creator", OPEN, -1));
        step("getACL /acl/creator without auth (needs READ or ADMIN in 3.8)");
        try {
            other.getACL("/acl/creator", new Stat());
            System.out.println("    allowed");
        } catch (KeeperException e) {
            System.out.println("    got " + e.code());
        }
        step("exists /acl/creator without auth (exists needs no permission)");
        other.exists("/acl/creator", false);
        step("addAuth digest alice:wrong (accepted: any user:password is a valid identity)");
        other.addAuthInfo("digest", b("alice:wrong"));
        expectError("getData /acl/creator as alice:wrong", KeeperException.Code.NOAUTH,
                () -> other.getData("/acl/creator", false, null));
        step("addAuth digest alice:secret");
        other.addAuthInfo("digest", b("alice:secret"));
        step("getData /acl/creator (allowed now)");
        other.getData("/acl/creator", false, null);
        step("delete /acl/readonly as alice (parent /acl is open)");
        other.delete("/acl/readonly", -1);
        close("auth-noauth", other);
        close("auth", zk);

        // A malformed digest credential (accepted!) and an unknown scheme
        // (AuthFailed, then the server closes the connection).
        Events w3 = new Events("authmalformed");
        ZooKeeper bad = open("auth-malformed-digest", LONG_TIMEOUT, w3);
        step("addAuth digest 'nocolon' (no ':' in the credential)");
        bad.addAuthInfo("digest", b("nocolon"));
        step("getData /acl (the session is still usable)");
        try {
            bad.getData("/acl", false, null);
        } catch (KeeperException ke) {
            System.out.println("    got " + ke.code());
        }
        close("auth-malformed-digest", bad);

        Events w4 = new Events("authscheme");
        ZooKeeper bad2 = open("auth-failed-scheme", LONG_TIMEOUT, w4);
        step("addAuth scheme 'nosuchscheme' -> AuthFailed and the server closes the connection");
        bad2.addAuthInfo("nosuchscheme", b("whatever"));
        try {
            w4.awaitState(Watcher.Event.KeeperState.AuthFailed, 3000);
            System.out.println("    AuthFailed");
        } catch (IllegalStateException e) {
            System.out.println("    " + e.getMessage());
        }
        bad2.close();
        ctl.cmd("wait auth-failed-scheme 5");
    }

    static void watchEvents() throws Exception {
        setup("/w", "w");
        setup("/w/data", "d0");
        setup("/w/gone", "g");
        setup("/w/kids", "k");
        Events ev = new Events("watcher");
        ZooKeeper zk = open("watch-events-watcher", LONG_TIMEOUT, ev);
        step("exists /w/new watch=true (absent -> NoNode, exist watch set)");
        zk.exists("/w/new", true);
        step("getData /w/data watch=true");
        zk.getData("/w/data", true, null);
        step("exists /w/gone watch=true (present)");
        zk.exists("/w/gone", true);
        step("getChildren /w watch=true");
        zk.getChildren("/w", true);
        step("getChildren2 /w/kids watch=true");
        zk.getChildren("/w/kids", true, new Stat());

        Events tv = new Events("trigger");
        ZooKeeper t = open("watch-events-trigger", LONG_TIMEOUT, tv);
        step("trigger: create /w/new -> NodeCreated /w/new + NodeChildrenChanged /w");
        t.create("/w/new", b("n"), OPEN, CreateMode.PERSISTENT);
        ev.awaitNodeEvents(2, 5000);
        step("trigger: setData /w/data -> NodeDataChanged /w/data");
        t.setData("/w/data", b("d1"), -1);
        ev.awaitNodeEvents(1, 5000);
        step("trigger: delete /w/gone -> NodeDeleted /w/gone");
        t.delete("/w/gone", -1);
        ev.awaitNodeEvents(1, 5000);
        step("trigger: create /w/kids/k1 -> NodeChildrenChanged /w/kids");
        t.create("/w/kids/k1", b("k1"), OPEN, CreateMode.PERSISTENT);
        ev.awaitNodeEvents(1, 5000);
        step("watcher: getData /w/new watch=true; trigger delete /w/new -> NodeDeleted via data watch");
        zk.getData("/w/new", true, null);
        t.delete("/w/new", -1);
        ev.awaitNodeEvents(1, 5000);
        step("trigger: setData /w/data again -> no event (watch was one-shot)");
        t.setData("/w/data", b("d2"), -1);
        Thread.sleep(300);
        close("watch-events-trigger", t);
        close("watch-events-watcher", zk);
    }

    static void persistentWatches() throws Exception {
        setup("/pw", "p0");
        setup("/rw", "r0");
        Events ev = new Events("pwatcher");
        ZooKeeper zk = open("persistent-watches-watcher", LONG_TIMEOUT, ev);
        step("addWatch /pw PERSISTENT (op 106, mode 0)");
        zk.addWatch("/pw", AddWatchMode.PERSISTENT);
        step("addWatch /rw PERSISTENT_RECURSIVE (op 106, mode 1)");
        zk.addWatch("/rw", AddWatchMode.PERSISTENT_RECURSIVE);
        step("addWatch /pwnew PERSISTENT on an absent node");
        zk.addWatch("/pwnew", AddWatchMode.PERSISTENT);

        Events tv = new Events("ptrigger");
        ZooKeeper t = open("persistent-watches-trigger", LONG_TIMEOUT, tv);
        step("trigger: setData /pw -> NodeDataChanged /pw");
        t.setData("/pw", b("p1"), -1);
        ev.awaitNodeEvents(1, 5000);
        step("trigger: setData /pw again -> NodeDataChanged /pw (watch persists)");
        t.setData("/pw", b("p2"), -1);
        ev.awaitNodeEvents(1, 5000);
        step("trigger: create /pw/kid -> NodeChildrenChanged /pw");
        t.create("/pw/kid", b("pk"), OPEN, CreateMode.PERSISTENT);
        ev.awaitNodeEvents(1, 5000);
        step("trigger: create /pwnew -> NodeCreated /pwnew");
        t.create("/pwnew", b("pn"), OPEN, CreateMode.PERSISTENT);
        ev.awaitNodeEvents(1, 5000);
        step("trigger: create /rw/a -> NodeCreated /rw/a (recursive: no NodeChildrenChanged)");
        t.create("/rw/a", b("ra"), OPEN, CreateMode.PERSISTENT);
        ev.awaitNodeEvents(1, 5000);
        step("trigger: create /rw/a/b -> NodeCreated /rw/a/b");
        t.create("/rw/a/b", b("rab"), OPEN, CreateMode.PERSISTENT);
        ev.awaitNodeEvents(1, 5000);
        step("trigger: setData /rw/a/b -> NodeDataChanged /rw/a/b");
        t.setData("/rw/a/b", b("rab2"), -1);
        ev.awaitNodeEvents(1, 5000);
        step("trigger: delete /rw/a/b -> NodeDeleted /rw/a/b");
        t.delete("/rw/a/b", -1);
        ev.awaitNodeEvents(1, 5000);
        step("trigger: delete /pwnew -> NodeDeleted /pwnew");
        t.delete("/pwnew", -1);
        ev.awaitNodeEvents(1, 5000);

        Watcher dataW = e -> System.out.println("    [dataW] " + e.getType() + " " + e.getPath());
        Watcher childW = e -> System.out.println("    [childW] " + e.getType() + " " + e.getPath());
        step("watcher: getData /rw/a with a specific data watcher, getChildren /rw/a with a child watcher");
        zk.getData("/rw/a", dataW, null);
        zk.getChildren("/rw/a", childW);
        step("removeWatches /rw/a dataW type Data (the client sends op 17 checkWatches, type 2)");
        zk.removeWatches("/rw/a", dataW, Watcher.WatcherType.Data, false);
        step("removeWatches /rw/a childW type Children");
        zk.removeWatches("/rw/a", childW, Watcher.WatcherType.Children, false);
        step("getData /rw/a watch=true, then removeAllWatches /rw/a type Any (op 18 removeWatches, type 3)");
        zk.getData("/rw/a", true, null);
        zk.removeAllWatches("/rw/a", Watcher.WatcherType.Any, false);
        step("removeAllWatches /pw type Any (persistent watch)");
        try {
            zk.removeAllWatches("/pw", Watcher.WatcherType.Any, false);
        } catch (KeeperException e) {
            System.out.println("    got " + e.code());
        }
        step("removeAllWatches /nowatch type Data (no watch anywhere)");
        try {
            zk.removeAllWatches("/nowatch", Watcher.WatcherType.Data, false);
        } catch (KeeperException e) {
            System.out.println("    got " + e.code());
        }
        step("removeAllWatches /rw type Children");
        try {
            zk.removeAllWatches("/rw", Watcher.WatcherType.Children, false);
        } catch (KeeperException e) {
            System.out.println("    got " + e.code());
        }
        step("trigger: setData /pw -> event only if the persistent watch survived");
        t.setData("/pw", b("p3"), -1);
        Thread.sleep(300);
        close("persistent-watches-trigger", t);
        close("persistent-watches-watcher", zk);
    }

    static void ping() throws Exception {
        Events w = new Events("ping");
        ZooKeeper zk = open("ping", SHORT_TIMEOUT, w);
        step("idle for 3.5s with a " + SHORT_TIMEOUT + "ms session: pings (xid -2, op 11)");
        Thread.sleep(3500);
        step("getData / after idling");
        zk.getData("/", false, null);
        close("ping", zk);
    }

    static void setWatches() throws Exception {
        setup("/sw", "sw");
        setup("/sw/data", "s0");
        setup("/sw/gone", "g");
        setup("/sw/other", "o");
        Events ev = new Events("sw");
        ZooKeeper zk = open("setwatches", LONG_TIMEOUT, ev);
        step("getData /sw/data watch, exists /sw/new watch (absent), exists /sw/gone watch, getChildren /sw watch, getData /sw/other watch");
        zk.getData("/sw/data", true, null);
        zk.exists("/sw/new", true);
        zk.exists("/sw/gone", true);
        zk.getChildren("/sw", true);
        zk.getData("/sw/other", true, null);
        step("proxy: hold new connections, cut this one");
        ctl.cmd("hold");
        label("setwatches-reconnect");
        ctl.cmd("cut setwatches");
        ev.awaitState(Watcher.Event.KeeperState.Disconnected, 5000);
        System.out.println("  - (unrecorded) setData /sw/data 's1' while the client is disconnected");
        admin.setData("/sw/data", b("s1"), -1);
        ctl.cmd("release");
        ev.awaitState(Watcher.Event.KeeperState.SyncConnected, 20000);
        step("reconnected with the same session; SetWatches (op 101) was sent; server fires NodeDataChanged /sw/data at once");
        ev.awaitNodeEvents(1, 5000);
        System.out.println("  - (unrecorded) create /sw/new, delete /sw/gone");
        admin.create("/sw/new", b("n"), OPEN, CreateMode.PERSISTENT);
        admin.delete("/sw/gone", -1);
        ev.awaitNodeEvents(3, 5000);
        step("re-registered watches fired: NodeCreated /sw/new, NodeChildrenChanged /sw, NodeDeleted /sw/gone");
        close("setwatches-reconnect", zk);
    }

    static void setWatches2() throws Exception {
        setup("/sw2", "x");
        setup("/sw2/p", "p0");
        setup("/sw2/r", "r0");
        Events ev = new Events("sw2");
        ZooKeeper zk = open("setwatches2", LONG_TIMEOUT, ev);
        step("addWatch /sw2/p PERSISTENT, addWatch /sw2/r PERSISTENT_RECURSIVE, getData /sw2 watch, exists /sw2/new watch");
        zk.addWatch("/sw2/p", AddWatchMode.PERSISTENT);
        zk.addWatch("/sw2/r", AddWatchMode.PERSISTENT_RECURSIVE);
        zk.getData("/sw2", true, null);
        zk.exists("/sw2/new", true);
        step("proxy: hold new connections, cut this one");
        ctl.cmd("hold");
        label("setwatches2-reconnect");
        ctl.cmd("cut setwatches2");
        ev.awaitState(Watcher.Event.KeeperState.Disconnected, 5000);
        System.out.println("  - (unrecorded) setData /sw2/p, create /sw2/r/x while disconnected");
        admin.setData("/sw2/p", b("p1"), -1);
        admin.create("/sw2/r/x", b("rx"), OPEN, CreateMode.PERSISTENT);
        ctl.cmd("release");
        ev.awaitState(Watcher.Event.KeeperState.SyncConnected, 20000);
        step("reconnected; SetWatches2 (op 105) carries the persistent watches");
        try {
            ev.awaitNodeEvents(1, 3000);
        } catch (IllegalStateException e) {
            System.out.println("    " + e.getMessage());
        }
        Thread.sleep(300);
        System.out.println("  - (unrecorded) setData /sw2/r/x");
        admin.setData("/sw2/r/x", b("rx2"), -1);
        Thread.sleep(300);
        step("after the trigger");
        close("setwatches2-reconnect", zk);
    }

    static void sessions() throws Exception {
        // 1. re-attach: the first connection goes away without closeSession
        Events wa = new Events("orig");
        ZooKeeper a = open("session-reattach-original", LONG_TIMEOUT, wa);
        step("create /sess-eph EPHEMERAL 'owner'");
        a.create("/sess-eph", b("owner"), OPEN, CreateMode.EPHEMERAL);
        long sid = a.getSessionId();
        byte[] pw = a.getSessionPasswd();
        step("client drops the socket without closeSession (testable injectSessionExpiration)");
        a.getTestable().injectSessionExpiration();
        ctl.cmd("wait session-reattach-original 10");
        Events wb = new Events("reattach");
        label("session-reattach");
        ZooKeeper b2 = new ZooKeeper(proxy, LONG_TIMEOUT, wb, sid, pw);
        wb.connected.await(20, TimeUnit.SECONDS);
        step("re-attached to session 0x" + Long.toHexString(sid) + " with its password");
        step("getData /sess-eph (ephemeral of the same session)");
        Stat st = new Stat();
        b2.getData("/sess-eph", false, st);
        System.out.println("    owner=0x" + Long.toHexString(st.getEphemeralOwner()) + " new sid=0x"
                + Long.toHexString(b2.getSessionId()));
        close("session-reattach", b2);

        // 2. wrong password while the owner session is alive
        Events wo = new Events("owner");
        ZooKeeper owner = open("session-wrong-password-owner", LONG_TIMEOUT, wo);
        byte[] bad = owner.getSessionPasswd().clone();
        bad[0] ^= 0x5a;
        Events wbad = new Events("badpw");
        label("session-wrong-password");
        ZooKeeper c = new ZooKeeper(proxy, LONG_TIMEOUT, wbad, owner.getSessionId(), bad);
        try {
            wbad.awaitState(Watcher.Event.KeeperState.Expired, 10000);
            System.out.println("    Expired as expected");
        } catch (IllegalStateException e) {
            System.out.println("    " + e.getMessage());
        }
        ctl.cmd("wait session-wrong-password 10");
        c.close();
        label("session-wrong-password-owner-reconnect");
        try {
            wo.awaitState(Watcher.Event.KeeperState.Disconnected, 3000);
            System.out.println("    the server dropped the owner's connection");
            wo.awaitState(Watcher.Event.KeeperState.SyncConnected, 30000);
            System.out.println("    owner reconnected");
        } catch (IllegalStateException ex) {
            System.out.println("    " + ex.getMessage());
        }
        step("owner still works: exists /");
        owner.exists("/", false);
        owner.close();
        ctl.cmd("wait session-wrong-password-owner-reconnect 10");

        // 3. a really expired session
        Events we = new Events("exp");
        ZooKeeper e = open("session-expired-original", SHORT_TIMEOUT, we);
        step("create /sess-exp EPHEMERAL; then drop the socket without closeSession");
        e.create("/sess-exp", b("x"), OPEN, CreateMode.EPHEMERAL);
        long esid = e.getSessionId();
        byte[] epw = e.getSessionPasswd();
        e.getTestable().injectSessionExpiration();
        ctl.cmd("wait session-expired-original 10");
        long deadline = System.currentTimeMillis() + 20000;
        while (admin.exists("/sess-exp", false) != null && System.currentTimeMillis() < deadline) {
            Thread.sleep(200);
        }
        System.out.println("  - session 0x" + Long.toHexString(esid) + " expired on the server");
        Events we2 = new Events("expired");
        label("session-expired");
        ZooKeeper e2 = new ZooKeeper(proxy, SHORT_TIMEOUT, we2, esid, epw);
        try {
            we2.awaitState(Watcher.Event.KeeperState.Expired, 10000);
            System.out.println("    Expired as expected");
        } catch (IllegalStateException ex) {
            System.out.println("    " + ex.getMessage());
        }
        ctl.cmd("wait session-expired 10");
        e2.close();
    }

    static void reconfig() throws Exception {
        Events w = new Events("reconfig");
        label("reconfig");
        ZooKeeperAdmin za = new ZooKeeperAdmin(proxy, LONG_TIMEOUT, w);
        w.connected.await(20, TimeUnit.SECONDS);
        step("getConfig with watch (getData /zookeeper/config watch=true)");
        za.getConfig(true, new Stat());
        step("reconfig incremental: joining server.2=127.0.0.1:2888:3888;2181 (op 16)");
        try {
            za.reconfigure("server.2=127.0.0.1:2888:3888;2181", null, null, -1, new Stat());
            System.out.println("    UNEXPECTED success");
        } catch (KeeperException e) {
            System.out.println("    got " + e.code());
        }
        step("reconfig non-incremental: members server.1=127.0.0.1:2888:3888;2181, fromConfig 0");
        try {
            za.reconfigure(null, null, "server.1=127.0.0.1:2888:3888;2181", 0, new Stat());
        } catch (KeeperException e) {
            System.out.println("    got " + e.code());
        }
        close("reconfig", za);
    }

    /** Run a raw request on a daemon thread; report if no reply comes. */
    static void rawStep(RawZooKeeper zk, int type, org.apache.jute.Record req, org.apache.jute.Record resp,
            long waitMs) throws Exception {
        final ReplyHeader[] out = new ReplyHeader[1];
        Thread th = new Thread(() -> {
            try {
                out[0] = zk.raw(type, req, resp);
            } catch (Exception e) {
                System.out.println("    raw request failed: " + e);
            }
        });
        th.setDaemon(true);
        th.start();
        th.join(waitMs);
        if (out[0] == null) {
            System.out.println("    no reply within " + waitMs + "ms");
            step("(no reply from the server within " + waitMs + "ms)");
        } else {
            System.out.println("    err=" + out[0].getErr() + " zxid=0x" + Long.toHexString(out[0].getZxid()));
        }
    }

    static void rawRequests() throws Exception {
        Events w = new Events("raw");
        label("raw-requests");
        RawZooKeeper zk = new RawZooKeeper(proxy, LONG_TIMEOUT, w);
        w.connected.await(20, TimeUnit.SECONDS);
        step("getData /crud via a hand-made request (sanity)");
        rawStep(zk, ZooDefs.OpCode.getData, new GetDataRequest("/crud", false), new GetDataResponse(), 5000);
        step("createTTL (op 21) with ttl 0 (the Java client refuses to send this itself)");
        rawStep(zk, ZooDefs.OpCode.createTTL,
                new CreateTTLRequest("/raw-ttl0", b("t0"), OPEN, CreateMode.PERSISTENT_WITH_TTL.toFlag(), 0),
                new CreateResponse(), 5000);
        step("create (op 1) with an invalid path '/bad//path'");
        rawStep(zk, ZooDefs.OpCode.create, new CreateRequest("/bad//path", b("x"), OPEN, 0), new CreateResponse(), 5000);
        step("create (op 1) with flags 5 (TTL flag) in a plain CreateRequest");
        rawStep(zk, ZooDefs.OpCode.create, new CreateRequest("/raw-flags5", b("x"), OPEN, 5), new CreateResponse(), 5000);
        step("unknown opcode 999 with an empty body");
        label("raw-requests-after-unknown");
        rawStep(zk, 999, null, null, 3000);
        try {
            w.awaitState(Watcher.Event.KeeperState.Disconnected, 3000);
            System.out.println("    the server closed the connection; waiting for the reconnect");
            w.awaitState(Watcher.Event.KeeperState.SyncConnected, 20000);
        } catch (IllegalStateException e) {
            System.out.println("    " + e.getMessage());
        }
        step("client state after the unknown opcode: " + zk.getState());
        zk.close();
        ctl.cmd("wait raw-requests 5");
        ctl.cmd("wait raw-requests-after-unknown 5");

        // A bare check (op 13) outside a multi.  Kept on its own connection:
        // if the server never answers it, later replies would be "out of order"
        // for the Java client.
        Events w2 = new Events("rawcheck");
        label("raw-check");
        RawZooKeeper zk2 = new RawZooKeeper(proxy, LONG_TIMEOUT, w2);
        w2.connected.await(20, TimeUnit.SECONDS);
        step("check (op 13) outside a multi: path /crud version 5 (wrong version)");
        rawStep(zk2, ZooDefs.OpCode.check, new CheckVersionRequest("/crud", 5), null, 3000);
        step("check (op 13) outside a multi: path / version -1 (would succeed)");
        rawStep(zk2, ZooDefs.OpCode.check, new CheckVersionRequest("/", -1), null, 3000);
        step("close (the Java client sees the closeSession reply as 'xid out of order')");
        zk2.close(2000);
        ctl.cmd("wait raw-check 5");
    }

    // ------------------------------------------------------------------

    public static void main(String[] args) throws Exception {
        if (args.length < 3) {
            System.err.println("usage: GoldenDriver proxyHost:port controlPort directHost:port [scenario...]");
            System.exit(2);
        }
        proxy = args[0];
        ctl = new Control(Integer.parseInt(args[1]));
        direct = args[2];
        Events aw = new Events("admin");
        admin = new ZooKeeper(direct, LONG_TIMEOUT, aw);
        aw.connected.await(20, TimeUnit.SECONDS);

        Map<String, Action> scenarios = new LinkedHashMap<>();
        scenarios.put("connect-close", GoldenDriver::connectClose);
        scenarios.put("connect-readonly", GoldenDriver::connectReadOnly);
        scenarios.put("create-modes", GoldenDriver::createModes);
        scenarios.put("crud", GoldenDriver::crud);
        scenarios.put("errors", GoldenDriver::errors);
        scenarios.put("multi", GoldenDriver::multi);
        scenarios.put("auth", GoldenDriver::auth);
        scenarios.put("watch-events", GoldenDriver::watchEvents);
        scenarios.put("persistent-watches", GoldenDriver::persistentWatches);
        scenarios.put("ping", GoldenDriver::ping);
        scenarios.put("setwatches", GoldenDriver::setWatches);
        scenarios.put("setwatches2", GoldenDriver::setWatches2);
        scenarios.put("sessions", GoldenDriver::sessions);
        scenarios.put("reconfig", GoldenDriver::reconfig);
        scenarios.put("raw-requests", GoldenDriver::rawRequests);

        List<String> wanted = new ArrayList<>(Arrays.asList(args).subList(3, args.length));
        if (wanted.isEmpty()) {
            wanted.addAll(scenarios.keySet());
        }
        for (String name : wanted) {
            Action a = scenarios.get(name);
            if (a == null) {
                System.err.println("unknown scenario " + name);
                failures++;
                continue;
            }
            System.out.println("== " + name);
            try {
                a.run();
            } catch (Exception e) {
                failures++;
                System.out.println("!! scenario " + name + " failed: " + e);
                e.printStackTrace(System.out);
                try {
                    ctl.cmd("release");
                } catch (Exception ignored) {
                    // best effort
                }
            }
        }
        admin.close();
        System.out.println(failures == 0 ? "all scenarios ran" : failures + " scenario(s) failed");
        System.exit(failures == 0 ? 0 : 1);
    }
}

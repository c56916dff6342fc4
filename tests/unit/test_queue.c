/* test_queue.c - queue writer, synchronous commit, recovery, recipient states
 *
 * queue_init(NULL, dir) sets the queue up without the event loop or the commit
 * thread; every test gets its own mkdtemp directory, removed afterwards.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "queue.h"
#include "queue_file.h"

struct fx {
    char dir[64];
};

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof(*f));
    snprintf(f->dir, sizeof(f->dir), "/tmp/tern-queue-XXXXXX");
    if (mkdtemp(f->dir) == NULL)
        return -1;
    if (queue_init(NULL, f->dir) != 0)
        return -1;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    queue_shutdown();
    nftw(f->dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
    free(f);
    return 0;
}

static void path_of(const struct fx *f, const char *sub, const char *name, char *out, size_t outsz)
{
    snprintf(out, outsz, "%s/%s/%s", f->dir, sub, name);
}

static int exists(const struct fx *f, const char *sub, const char *name)
{
    char p[256];
    path_of(f, sub, name, p, sizeof(p));
    return access(p, F_OK) == 0;
}

/* count - entries of DIR/sub, dotfiles excluded */
static int count(const struct fx *f, const char *sub)
{
    char p[256];
    snprintf(p, sizeof(p), "%s/%s", f->dir, sub);
    DIR *d = opendir(p);
    assert_non_null(d);
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL)
        if (de->d_name[0] != '.')
            n++;
    closedir(d);
    return n;
}

/* slurp - whole file into b; -1 if it cannot be opened */
static int slurp(const char *path, struct buf *b)
{
    int fd = open(path, O_RDONLY);
    if (fd < 0)
        return -1;
    char tmp[8192];
    ssize_t n;
    buf_reset(b);
    while ((n = read(fd, tmp, sizeof(tmp))) > 0)
        buf_append(b, tmp, (size_t)n);
    close(fd);
    return 0;
}

static void put_file(const struct fx *f, const char *sub, const char *name, const void *p, size_t n)
{
    char path[256];
    path_of(f, sub, name, path, sizeof(path));
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, p, n), (ssize_t)n);
    close(fd);
}

/* envelope - a valid envelope for id with nrcpt recipients */
static void envelope(const char *id, size_t nrcpt, struct buf *out, struct qrcpt *rc)
{
    struct qenv env;
    memset(&env, 0, sizeof(env));
    snprintf(env.id, sizeof(env.id), "%s", id);
    env.arrival = 1763789509;
    env.client_addr = "192.0.2.1";
    env.client_name = "c.example";
    env.helo = "c.example";
    env.proto = "ESMTP";
    env.sender = "a@example.org";
    static char names[8][32];
    for (size_t i = 0; i < nrcpt; i++) {
        snprintf(names[i], sizeof(names[i]), "r%zu@example.net", i);
        memset(&rc[i], 0, sizeof(rc[i]));
        rc[i].addr = names[i];
        rc[i].state = RCPT_QUEUED;
    }
    env.rcpts = rc;
    env.nrcpt = nrcpt;
    queue_env_encode(&env, out);
}

/* ---- init / paths ---------------------------------------------------------- */

static void test_init_dirs(void **state)
{
    struct fx *f = *state;
    static const char *subs[] = {"tmp", "msg", "corrupt"};
    for (size_t i = 0; i < 3; i++) {
        char p[256];
        struct stat st;
        snprintf(p, sizeof(p), "%s/%s", f->dir, subs[i]);
        assert_int_equal(stat(p, &st), 0);
        assert_true(S_ISDIR(st.st_mode));
        assert_int_equal(st.st_mode & 0777, 0700);
    }
    assert_string_equal(queue_dir(), f->dir);
    char p[300], want[300];
    queue_path("6740A1B2C3D4", p, sizeof(p));
    snprintf(want, sizeof(want), "%s/msg/6740A1B2C3D4", f->dir);
    assert_string_equal(p, want);

    /* a second init over existing directories is fine */
    queue_shutdown();
    assert_int_equal(queue_init(NULL, f->dir), 0);
}

static void test_init_fails(void **state)
{
    struct fx *f = *state;
    char p[256];
    snprintf(p, sizeof(p), "%s/no/such/parent", f->dir);
    queue_shutdown();
    assert_int_equal(queue_init(NULL, p), -1);
    /* and a file where the directory should be */
    snprintf(p, sizeof(p), "%s/plainfile", f->dir);
    int fd = open(p, O_WRONLY | O_CREAT, 0600);
    close(fd);
    assert_int_equal(queue_init(NULL, p), -1);
    queue_shutdown();
    assert_int_equal(queue_init(NULL, f->dir), 0); /* for teardown */
}

/* ---- writer ------------------------------------------------------------------ */

static void test_open_creates_tmp(void **state)
{
    struct fx *f = *state;
    time_t before = time(NULL);
    struct queue_writer *w = queue_writer_open();
    time_t after = time(NULL);
    assert_non_null(w);
    const char *id = queue_writer_id(w);
    assert_int_equal(strlen(id), QID_LEN);
    assert_true(queue_id_valid(id));
    for (int i = 0; i < QID_LEN; i++)
        assert_true((id[i] >= '0' && id[i] <= '9') || (id[i] >= 'A' && id[i] <= 'F'));
    /* the first 8 digits are the arrival second */
    char sec[9];
    memcpy(sec, id, 8);
    sec[8] = '\0';
    unsigned long t = strtoul(sec, NULL, 16);
    assert_true(t >= (unsigned long)before && t <= (unsigned long)after);

    char p[256];
    struct stat st;
    path_of(f, "tmp", id, p, sizeof(p));
    assert_int_equal(stat(p, &st), 0);
    assert_true(S_ISREG(st.st_mode));
    assert_int_equal(st.st_size, 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    assert_false(exists(f, "msg", id));
    assert_int_equal(queue_writer_size(w), 0);
    assert_int_equal(queue_writer_failed(w), 0);
    assert_int_equal(count(f, "tmp"), 1);
    queue_writer_abort(w);
}

static int cmp_id(const void *a, const void *b)
{
    return strcmp((const char *)a, (const char *)b);
}

static void test_ids_unique(void **state)
{
    struct fx *f = *state;
    enum { N = 1000, HELD = 200 };
    char (*ids)[QID_LEN + 1] = calloc(N, QID_LEN + 1);
    struct queue_writer *held[HELD];
    for (int i = 0; i < N; i++) {
        struct queue_writer *w = queue_writer_open();
        assert_non_null(w);
        memcpy(ids[i], queue_writer_id(w), QID_LEN + 1);
        assert_true(queue_id_valid(ids[i]));
        assert_true(exists(f, "tmp", ids[i]));
        if (i < HELD)
            held[i] = w; /* some stay open at the same time */
        else
            queue_writer_abort(w);
    }
    assert_int_equal(count(f, "tmp"), HELD);
    for (int i = 0; i < HELD; i++)
        queue_writer_abort(held[i]);
    assert_int_equal(count(f, "tmp"), 0);
    qsort(ids, N, QID_LEN + 1, cmp_id);
    for (int i = 1; i < N; i++)
        if (strcmp(ids[i - 1], ids[i]) == 0)
            fail_msg("id %s given twice", ids[i]);
    free(ids);
}

/* an id already in msg/ or tmp/ is never handed out again */
static void test_open_skips_existing(void **state)
{
    struct fx *f = *state;
    for (int round = 0; round < 20; round++) {
        struct queue_writer *w = queue_writer_open();
        assert_non_null(w);
        char id[QID_LEN + 1];
        memcpy(id, queue_writer_id(w), sizeof(id));
        queue_writer_abort(w);
        /* the next two ids in the same second */
        unsigned long t = 0, c = 0;
        assert_int_equal(sscanf(id, "%8lx%4lx", &t, &c), 2);
        char next1[QID_LEN + 1], next2[QID_LEN + 1];
        snprintf(next1, sizeof(next1), "%08lX%04lX", t, (c + 1) & 0xffff);
        snprintf(next2, sizeof(next2), "%08lX%04lX", t, (c + 2) & 0xffff);
        put_file(f, "msg", next1, "committed", 9);
        put_file(f, "tmp", next2, "receiving", 9);
        w = queue_writer_open();
        assert_non_null(w);
        assert_string_not_equal(queue_writer_id(w), next1);
        assert_string_not_equal(queue_writer_id(w), next2);
        queue_writer_abort(w);
        /* the existing files are untouched */
        struct buf b = BUF_INIT;
        char p[256];
        path_of(f, "msg", next1, p, sizeof(p));
        assert_int_equal(slurp(p, &b), 0);
        assert_string_equal(buf_str(&b), "committed");
        path_of(f, "tmp", next2, p, sizeof(p));
        assert_int_equal(slurp(p, &b), 0);
        assert_string_equal(buf_str(&b), "receiving");
        buf_free(&b);
    }
}

static void test_abort_removes(void **state)
{
    struct fx *f = *state;
    struct queue_writer *w = queue_writer_open();
    assert_non_null(w);
    char id[QID_LEN + 1];
    memcpy(id, queue_writer_id(w), sizeof(id));
    char data[100000];
    memset(data, 'x', sizeof(data));
    queue_writer_write(w, data, sizeof(data)); /* some of it reaches the file */
    queue_writer_write(w, "tail", 4);
    assert_int_equal(queue_writer_size(w), sizeof(data) + 4);
    assert_true(exists(f, "tmp", id));
    queue_writer_abort(w);
    assert_false(exists(f, "tmp", id));
    assert_false(exists(f, "msg", id));
    assert_int_equal(count(f, "tmp"), 0);
    assert_int_equal(count(f, "msg"), 0);
}

/* write patterns: chunk sizes around the 64 KiB write buffer */
struct wcase {
    const char *name;
    size_t total;
    size_t chunks[6]; /* cycled; 0 ends the list */
};

static const struct wcase wcases[] = {
    {"empty", 0, {1}},
    {"one byte", 1, {1}},
    {"small", 1000, {1000}},
    {"bytewise", 3000, {1}},
    {"exactly the buffer", 65536, {65536}},
    {"buffer minus one, then two", 65537, {65535, 2}},
    {"buffer plus one", 65537, {65537}},
    {"small then huge", 300000, {10, 200000, 7}},
    {"uneven", 500000, {1, 7, 4096, 65536, 70000, 13}},
};

static void test_commit_sync_content(void **state)
{
    struct fx *f = *state;
    for (size_t k = 0; k < sizeof(wcases) / sizeof(wcases[0]); k++) {
        const struct wcase *c = &wcases[k];
        char *data = malloc(c->total + 1);
        for (size_t i = 0; i < c->total; i++)
            data[i] = (char)((i * 7 + i / 251) & 0xff);
        struct queue_writer *w = queue_writer_open();
        assert_non_null(w);
        char id[QID_LEN + 1];
        memcpy(id, queue_writer_id(w), sizeof(id));
        size_t off = 0, ci = 0;
        while (off < c->total) {
            size_t n = c->chunks[ci];
            ci = (ci + 1 < 6 && c->chunks[ci + 1]) ? ci + 1 : 0;
            if (n > c->total - off)
                n = c->total - off;
            queue_writer_write(w, data + off, n);
            off += n;
            assert_int_equal(queue_writer_size(w), (off_t)off);
        }
        assert_int_equal(queue_writer_failed(w), 0);
        assert_int_equal(queue_writer_commit_sync(w), 0);
        if (exists(f, "tmp", id))
            fail_msg("%s: tmp/%s left behind", c->name, id);
        char p[256];
        struct buf b = BUF_INIT;
        path_of(f, "msg", id, p, sizeof(p));
        if (slurp(p, &b) != 0)
            fail_msg("%s: msg/%s missing", c->name, id);
        assert_int_equal(b.len, c->total);
        if (c->total)
            assert_memory_equal(b.data, data, c->total);
        struct stat st;
        assert_int_equal(stat(p, &st), 0);
        assert_int_equal(st.st_mode & 0777, 0600);
        assert_int_equal(queue_remove(id), 0);
        assert_false(exists(f, "msg", id));
        assert_int_equal(queue_remove(id), -1);
        buf_free(&b);
        free(data);
    }
    assert_int_equal(count(f, "tmp"), 0);
    assert_int_equal(count(f, "msg"), 0);
}

/* a commit that cannot rename fails, reports errno and leaves no file */
static void test_commit_sync_failure(void **state)
{
    struct fx *f = *state;
    struct queue_writer *w = queue_writer_open();
    assert_non_null(w);
    char id[QID_LEN + 1];
    memcpy(id, queue_writer_id(w), sizeof(id));
    queue_writer_write(w, "hello\n", 6);
    char p[256];
    snprintf(p, sizeof(p), "%s/msg", f->dir);
    assert_int_equal(rmdir(p), 0);
    errno = 0;
    assert_int_equal(queue_writer_commit_sync(w), -1);
    assert_int_equal(errno, ENOENT);
    assert_false(exists(f, "tmp", id));
    assert_int_equal(mkdir(p, 0700), 0);
    assert_false(exists(f, "msg", id));
}

/* a write error is sticky, fails the commit and leaves no file anywhere */
static void test_write_error(void **state)
{
    struct fx *f = *state;
    struct rlimit old, small;
    assert_int_equal(getrlimit(RLIMIT_FSIZE, &old), 0);
    void (*oldsig)(int) = signal(SIGXFSZ, SIG_IGN);
    small = old;
    small.rlim_cur = 100000;
    struct queue_writer *w = queue_writer_open();
    assert_non_null(w);
    char id[QID_LEN + 1];
    memcpy(id, queue_writer_id(w), sizeof(id));
    char *data = calloc(1, 300000);
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &small), 0);
    queue_writer_write(w, data, 70000);
    queue_writer_write(w, data, 200000); /* crosses the file size limit */
    queue_writer_write(w, "more", 4);
    int err = queue_writer_failed(w);
    errno = 0;
    int r = queue_writer_commit_sync(w);
    int e = errno;
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &old), 0);
    signal(SIGXFSZ, oldsig);
    free(data);
    assert_int_equal(err, EFBIG);
    assert_int_equal(r, -1);
    assert_int_equal(e, EFBIG);
    assert_false(exists(f, "tmp", id));
    assert_false(exists(f, "msg", id));
}

/* no tmp/ directory: open fails with errno */
static void test_open_fails(void **state)
{
    struct fx *f = *state;
    char p[256];
    snprintf(p, sizeof(p), "%s/tmp", f->dir);
    assert_int_equal(rmdir(p), 0);
    errno = 0;
    assert_null(queue_writer_open());
    assert_int_equal(errno, ENOENT);
    assert_int_equal(mkdir(p, 0700), 0);
    struct queue_writer *w = queue_writer_open();
    assert_non_null(w);
    queue_writer_abort(w);
}

/* ---- recovery ------------------------------------------------------------------ */

struct seen {
    char ids[16][QID_LEN + 1];
    int n;
};

static void recover_cb(void *arg, const char *qid)
{
    struct seen *s = arg;
    assert_true(s->n < 16);
    snprintf(s->ids[s->n++], QID_LEN + 1, "%s", qid);
}

static int seen_has(const struct seen *s, const char *id)
{
    for (int i = 0; i < s->n; i++)
        if (strcmp(s->ids[i], id) == 0)
            return 1;
    return 0;
}

static void test_recover(void **state)
{
    struct fx *f = *state;
    struct buf b = BUF_INIT;
    struct qrcpt rc[8];

    /* leftovers in tmp/: an open writer's file and stray files */
    struct queue_writer *w = queue_writer_open();
    assert_non_null(w);
    char wid[QID_LEN + 1];
    memcpy(wid, queue_writer_id(w), sizeof(wid));
    put_file(f, "tmp", "0000000000AA", "partial", 7);
    put_file(f, "tmp", "junk name", "x", 1);

    /* valid messages in msg/ */
    static const char *good[] = {"6740A1B2C3D4", "6740A1B2C3D5", "000000000001"};
    for (size_t i = 0; i < 3; i++) {
        buf_reset(&b);
        envelope(good[i], i + 1, &b, rc);
        buf_puts(&b, "Subject: hi\n\nbody\n");
        put_file(f, "msg", good[i], b.data, b.len);
    }
    /* a message committed through the writer */
    struct queue_writer *w2 = queue_writer_open();
    assert_non_null(w2);
    char cid[QID_LEN + 1];
    memcpy(cid, queue_writer_id(w2), sizeof(cid));
    buf_reset(&b);
    envelope(cid, 2, &b, rc);
    queue_writer_write(w2, b.data, b.len);
    queue_writer_write(w2, "text\n", 5);
    assert_int_equal(queue_writer_commit_sync(w2), 0);

    /* corrupt ones */
    put_file(f, "msg", "6740A1B2C3E0", "garbage\n", 8);
    put_file(f, "msg", "6740A1B2C3E1", "", 0);
    buf_reset(&b);
    envelope("6740A1B2C3FF", 1, &b, rc); /* valid envelope, wrong name */
    put_file(f, "msg", "6740A1B2C3E2", b.data, b.len);
    buf_reset(&b);
    envelope("6740A1B2C3E3", 1, &b, rc);
    put_file(f, "msg", "6740A1B2C3E3", b.data, b.len - 5); /* no "data" line */
    buf_reset(&b);
    envelope("6740A1B2C3E4", 1, &b, rc);
    b.data[rc[0].state_off] = 'Z'; /* bad state byte */
    put_file(f, "msg", "6740A1B2C3E4", b.data, b.len);
    buf_reset(&b);
    envelope("6740A1B2C3E5", 1, &b, rc);
    put_file(f, "msg", "not-an-id", b.data, b.len);
    put_file(f, "msg", "6740a1b2c3e6", b.data, b.len); /* lowercase name */
    /* dotfiles are not queue files */
    put_file(f, "msg", ".keep", "", 0);

    struct seen s;
    memset(&s, 0, sizeof(s));
    long n = queue_recover(recover_cb, &s);
    assert_int_equal(n, 4);
    assert_int_equal(s.n, 4);
    for (size_t i = 0; i < 3; i++)
        assert_true(seen_has(&s, good[i]));
    assert_true(seen_has(&s, cid));

    /* tmp/ is empty, valid files stay, corrupt ones moved */
    assert_int_equal(count(f, "tmp"), 0);
    assert_false(exists(f, "tmp", wid));
    assert_int_equal(count(f, "msg"), 4);
    for (size_t i = 0; i < 3; i++)
        assert_true(exists(f, "msg", good[i]));
    assert_true(exists(f, "msg", cid));
    assert_true(exists(f, "msg", ".keep"));
    static const char *bad[] = {"6740A1B2C3E0", "6740A1B2C3E1", "6740A1B2C3E2", "6740A1B2C3E3",
                                "6740A1B2C3E4", "not-an-id", "6740a1b2c3e6"};
    assert_int_equal(count(f, "corrupt"), 7);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (!exists(f, "corrupt", bad[i]))
            fail_msg("%s not moved to corrupt/", bad[i]);
        assert_false(exists(f, "msg", bad[i]));
    }
    /* moved, not rewritten */
    struct buf c = BUF_INIT;
    char p[256];
    path_of(f, "corrupt", "6740A1B2C3E0", p, sizeof(p));
    assert_int_equal(slurp(p, &c), 0);
    assert_string_equal(buf_str(&c), "garbage\n");

    /* a second recovery finds the same messages and nothing else to do */
    memset(&s, 0, sizeof(s));
    assert_int_equal(queue_recover(recover_cb, &s), 4);
    assert_int_equal(count(f, "corrupt"), 7);

    queue_writer_abort(w); /* its file is already gone: must not fail */
    buf_free(&c);
    buf_free(&b);
}

static void test_recover_empty(void **state)
{
    struct fx *f = *state;
    struct seen s;
    memset(&s, 0, sizeof(s));
    assert_int_equal(queue_recover(recover_cb, &s), 0);
    assert_int_equal(s.n, 0);
    /* no msg/ directory: an error */
    char p[256];
    snprintf(p, sizeof(p), "%s/msg", f->dir);
    assert_int_equal(rmdir(p), 0);
    assert_int_equal(queue_recover(recover_cb, &s), -1);
    assert_int_equal(mkdir(p, 0700), 0);
}

/* ---- recipient states ------------------------------------------------------------ */

static void test_set_rcpt_state(void **state)
{
    struct fx *f = *state;
    struct buf env = BUF_INIT, before = BUF_INIT, after = BUF_INIT;
    struct qrcpt rc[8];
    struct queue_writer *w = queue_writer_open();
    assert_non_null(w);
    char id[QID_LEN + 1];
    memcpy(id, queue_writer_id(w), sizeof(id));
    envelope(id, 3, &env, rc);
    queue_writer_write(w, env.data, env.len);
    queue_writer_write(w, "Subject: x\n\nQ D B\n", 18);
    assert_int_equal(queue_writer_commit_sync(w), 0);
    assert_true(exists(f, "msg", id));
    assert_false(exists(f, "tmp", id));

    char p[256];
    queue_path(id, p, sizeof(p));
    assert_int_equal(slurp(p, &before), 0);
    int fd = open(p, O_RDWR);
    assert_true(fd >= 0);

    static const struct {
        size_t rcpt;
        char state;
        const char *want; /* states of r0 r1 r2 afterwards */
    } steps[] = {
        {1, RCPT_DONE, "QDQ"},
        {2, RCPT_BOUNCE, "QDB"},
        {0, RCPT_DONE, "DDB"},
        {0, RCPT_QUEUED, "QDB"},
        {2, RCPT_BOUNCE, "QDB"},
    };
    for (size_t k = 0; k < sizeof(steps) / sizeof(steps[0]); k++) {
        /* offsets as the queue manager gets them: from reading the file */
        struct qenv dec;
        char err[256];
        assert_int_equal(queue_env_read(fd, &dec, err, sizeof(err)), 0);
        assert_int_equal(dec.nrcpt, 3);
        off_t off = dec.rcpts[steps[k].rcpt].state_off;
        assert_int_equal(off, rc[steps[k].rcpt].state_off);
        queue_env_free(&dec);

        assert_int_equal(queue_set_rcpt_state(fd, off, steps[k].state), 0);
        assert_int_equal(queue_sync_fd(fd), 0);

        assert_int_equal(slurp(p, &after), 0);
        assert_int_equal(after.len, before.len);
        size_t diffs = 0;
        for (size_t i = 0; i < before.len; i++)
            if (before.data[i] != after.data[i]) {
                assert_int_equal(i, (size_t)off);
                diffs++;
            }
        assert_true(diffs <= 1);
        assert_int_equal(after.data[off], steps[k].state);

        assert_int_equal(queue_env_read(fd, &dec, err, sizeof(err)), 0);
        for (size_t r = 0; r < 3; r++)
            assert_int_equal(dec.rcpts[r].state, steps[k].want[r]);
        queue_env_free(&dec);
        buf_reset(&before);
        buf_append(&before, after.data, after.len);
    }
    /* the message text is untouched */
    assert_non_null(strstr(before.data, "\ndata\nSubject: x\n\nQ D B\n"));
    close(fd);

    assert_int_equal(queue_set_rcpt_state(-1, 10, RCPT_DONE), -1);
    int ro = open(p, O_RDONLY);
    assert_int_equal(queue_set_rcpt_state(ro, rc[0].state_off, RCPT_DONE), -1);
    close(ro);
    buf_free(&env);
    buf_free(&before);
    buf_free(&after);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_init_dirs, setup, teardown),
        cmocka_unit_test_setup_teardown(test_init_fails, setup, teardown),
        cmocka_unit_test_setup_teardown(test_open_creates_tmp, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ids_unique, setup, teardown),
        cmocka_unit_test_setup_teardown(test_open_skips_existing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_abort_removes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_commit_sync_content, setup, teardown),
        cmocka_unit_test_setup_teardown(test_commit_sync_failure, setup, teardown),
        cmocka_unit_test_setup_teardown(test_write_error, setup, teardown),
        cmocka_unit_test_setup_teardown(test_open_fails, setup, teardown),
        cmocka_unit_test_setup_teardown(test_recover, setup, teardown),
        cmocka_unit_test_setup_teardown(test_recover_empty, setup, teardown),
        cmocka_unit_test_setup_teardown(test_set_rcpt_state, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

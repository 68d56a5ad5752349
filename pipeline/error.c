/*
 * error.c — reporting and the exit-code table (spec outputs.md "Exit status").
 */
#include "error.h"

#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

static const char *command_name;
static int quiet;
static int summary_printed;      /* tly_summary ran: the command ended with its line */
static int progress_drawn;       /* a progress line is on the terminal, not yet cleared */

static const struct {
    const char *text;
    int exit_code;
    int rank;          /* "the first of 75, 74, 73, 65, 3 wins" */
} error_table[TLY_ERR_MAX] = {
    [TLY_OK]          = { "ok", 0, 0 },
    [TLY_QUARANTINED] = { "input quarantined", 3, 1 },
    [TLY_HELP]        = { "help shown", 0, 0 },
    [TLY_ERR_USAGE]   = { "bad usage", 64, 2 },
    [TLY_ERR_INPUT]   = { "unusable input", 65, 3 },
    [TLY_ERR_OUTPUT]  = { "cannot write output", 73, 4 },
    [TLY_ERR_IO]      = { "I/O error", 74, 5 },
    [TLY_ERR_NOMEM]   = { "out of memory", 74, 5 },
    [TLY_ERR_LEDGER]  = { "ledger error", 74, 5 },
    [TLY_ERR_LOCKED]  = { "ledger locked by another run", 75, 6 },
};

void tly_error_set_command(const char *name) { command_name = name; }
const char *tly_error_command(void) { return command_name ? command_name : ""; }
void tly_error_quiet(int q) { quiet = q; }

/*
 * Muting.  While mutes > 0, descriptor 2 points at /dev/null and real_fd
 * is the stderr it replaced; mute_lock also keeps each line whole when
 * several threads report (ingest's read-ahead, the report's writers).
 */
static pthread_mutex_t mute_lock = PTHREAD_MUTEX_INITIALIZER;
static int mutes, real_fd = -1;

void tly_stderr_mute(void)
{
    int null_fd;

    pthread_mutex_lock(&mute_lock);
    if (mutes++ == 0) {
        fflush(stderr);
        if ((null_fd = open("/dev/null", O_WRONLY | O_CLOEXEC)) >= 0) {
            if ((real_fd = fcntl(STDERR_FILENO, F_DUPFD_CLOEXEC, 3)) >= 0)
                dup2(null_fd, STDERR_FILENO);
            close(null_fd);
        }
    }
    pthread_mutex_unlock(&mute_lock);
}

void tly_stderr_unmute(void)
{
    pthread_mutex_lock(&mute_lock);
    if (--mutes == 0 && real_fd >= 0) {
        fflush(stderr);
        dup2(real_fd, STDERR_FILENO);
        close(real_fd);
        real_fd = -1;
    }
    pthread_mutex_unlock(&mute_lock);
}

/* Columns of the terminal on fd, 80 when it does not say. */
static size_t columns(int fd)
{
    struct winsize w;
    return ioctl(fd, TIOCGWINSZ, &w) == 0 && w.ws_col > 1 ? w.ws_col : 80;
}

/*
 * A progress line: carriage return, the text cut to one row of the
 * terminal (at a UTF-8 character boundary; a longer line would wrap and
 * the next '\r' would redraw only its last row), then erase to the end.
 */
static void draw_progress(int fd, const char *fmt, va_list ap)
{
    char line[512];
    size_t n, max;
    int len = snprintf(line, sizeof line, "tally: ");

    vsnprintf(line + len, sizeof line - (size_t)len, fmt, ap);
    n = strlen(line);
    max = columns(fd) - 1;
    if (n > max) {
        n = max;
        while (n > 0 && ((unsigned char)line[n] & 0xc0) == 0x80)
            n--;
    }
    dprintf(fd, "\r%.*s\033[K", (int)n, line);
    progress_drawn = 1;
}

/* Erases a drawn progress line (mute_lock held). */
static void erase_progress(int fd)
{
    if (progress_drawn)
        dprintf(fd, "\r\033[K");
    progress_drawn = 0;
}

/* "tally: [COMMAND: ][KIND]message" on the real stderr; progress on a terminal only. */
static void vreport(int with_command, const char *kind, int progress, const char *fmt, va_list ap)
{
    int fd;

    if (quiet)
        return;
    pthread_mutex_lock(&mute_lock);
    fd = real_fd >= 0 ? real_fd : STDERR_FILENO;
    fflush(stderr);
    if (progress) {
        if (isatty(fd))
            draw_progress(fd, fmt, ap);
    } else {
        erase_progress(fd);
        dprintf(fd, "tally: %s%s%s", with_command && command_name ? command_name : "",
                with_command && command_name ? ": " : "", kind ? kind : "");
        vdprintf(fd, fmt, ap);
        dprintf(fd, "\n");
    }
    pthread_mutex_unlock(&mute_lock);
}

int tly_error(enum tly_err code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vreport(1, NULL, 0, fmt, ap);
    va_end(ap);
    return code;
}

void tly_warn(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vreport(1, "warning: ", 0, fmt, ap);
    va_end(ap);
}

void tly_note(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vreport(1, NULL, 0, fmt, ap);
    va_end(ap);
}

void tly_summary(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vreport(1, NULL, 0, fmt, ap);
    va_end(ap);
    summary_printed = 1;
}

int tly_summary_printed(void)
{
    return summary_printed;
}

const char *tly_plural(long n)
{
    return n == 1 ? "" : "s";
}

void tly_vprogress(const char *fmt, va_list ap)
{
    vreport(0, NULL, 1, fmt, ap);
}

void tly_progress(const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    tly_vprogress(fmt, ap);
    va_end(ap);
}

void tly_progress_clear(void)
{
    pthread_mutex_lock(&mute_lock);
    erase_progress(real_fd >= 0 ? real_fd : STDERR_FILENO);
    pthread_mutex_unlock(&mute_lock);
}

int tly_progress_wanted(void)
{
    static int wanted = -1;

    if (wanted < 0)
        wanted = !quiet && isatty(real_fd >= 0 ? real_fd : STDERR_FILENO);
    return wanted;
}

const char *tly_strerror(enum tly_err code)
{
    if ((unsigned)code >= TLY_ERR_MAX)
        return "unknown error";
    return error_table[code].text;
}

int tly_exit_code(enum tly_err code)
{
    if ((unsigned)code >= TLY_ERR_MAX)
        return 74;
    return error_table[code].exit_code;
}

enum tly_err tly_err_worst(enum tly_err a, enum tly_err b)
{
    int ra = (unsigned)a < TLY_ERR_MAX ? error_table[a].rank : 5;
    int rb = (unsigned)b < TLY_ERR_MAX ? error_table[b].rank : 5;
    return rb > ra ? b : a;
}

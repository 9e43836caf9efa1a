#include "tp_http.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "tp_err.h"

bool tp_str_eq(struct tp_str a, const char *lit)
{
    /* Most comparisons fail on the first byte: decide those without strlen. */
    if (a.len == 0 || a.base[0] != lit[0])
        return a.len == 0 && lit[0] == '\0';
    size_t n = strlen(lit);
    return a.len == n && memcmp(a.base, lit, n) == 0;
}

bool tp_str_caseeq(struct tp_str a, const char *lit)
{
    size_t n = strlen(lit);
    return a.len == n && strncasecmp(a.base, lit, n) == 0;
}

const unsigned char tp_http_tchar_lower[256] = {
    ['!'] = '!', ['#'] = '#', ['$'] = '$', ['%'] = '%', ['&'] = '&', ['\''] = '\'',
    ['*'] = '*', ['+'] = '+', ['-'] = '-', ['.'] = '.', ['^'] = '^', ['_'] = '_',
    ['`'] = '`', ['|'] = '|', ['~'] = '~', ['0'] = '0', ['1'] = '1', ['2'] = '2',
    ['3'] = '3', ['4'] = '4', ['5'] = '5', ['6'] = '6', ['7'] = '7', ['8'] = '8',
    ['9'] = '9', ['A'] = 'a', ['B'] = 'b', ['C'] = 'c', ['D'] = 'd', ['E'] = 'e',
    ['F'] = 'f', ['G'] = 'g', ['H'] = 'h', ['I'] = 'i', ['J'] = 'j', ['K'] = 'k',
    ['L'] = 'l', ['M'] = 'm', ['N'] = 'n', ['O'] = 'o', ['P'] = 'p', ['Q'] = 'q',
    ['R'] = 'r', ['S'] = 's', ['T'] = 't', ['U'] = 'u', ['V'] = 'v', ['W'] = 'w',
    ['X'] = 'x', ['Y'] = 'y', ['Z'] = 'z', ['a'] = 'a', ['b'] = 'b', ['c'] = 'c',
    ['d'] = 'd', ['e'] = 'e', ['f'] = 'f', ['g'] = 'g', ['h'] = 'h', ['i'] = 'i',
    ['j'] = 'j', ['k'] = 'k', ['l'] = 'l', ['m'] = 'm', ['n'] = 'n', ['o'] = 'o',
    ['p'] = 'p', ['q'] = 'q', ['r'] = 'r', ['s'] = 's', ['t'] = 't', ['u'] = 'u',
    ['v'] = 'v', ['w'] = 'w', ['x'] = 'x', ['y'] = 'y', ['z'] = 'z',
};

static bool list_sep(char c)
{
    return c == ',' || c == ' ' || c == '\t';
}

bool tp_http_list_word(struct tp_str *rest, struct tp_str *word)
{
    size_t i = 0, n = rest->len;
    while (i < n && list_sep(rest->base[i]))
        i++;
    size_t start = i;
    while (i < n && !list_sep(rest->base[i]))
        i++;
    /* An empty |rest| may carry a NULL base: no arithmetic on it then. */
    *word = (struct tp_str){i > start ? rest->base + start : rest->base, i - start};
    *rest = (struct tp_str){i > 0 ? rest->base + i : rest->base, n - i};
    return word->len > 0;
}

static const char wdays[7][4] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
static const char months[12][4] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                   "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};

static void put2(char *p, int v)
{
    p[0] = (char)('0' + v / 10 % 10);
    p[1] = (char)('0' + v % 10);
}

size_t tp_http_date(time_t t, char *out)
{
    struct tm tm;
    gmtime_r(&t, &tm);
    /* "Sun, 06 Nov 1994 08:49:37 GMT" built by hand: no locale, no snprintf. */
    memcpy(out, wdays[tm.tm_wday], 3);
    out[3] = ',';
    out[4] = ' ';
    put2(out + 5, tm.tm_mday);
    out[7] = ' ';
    memcpy(out + 8, months[tm.tm_mon], 3);
    out[11] = ' ';
    int year = tm.tm_year + 1900;
    put2(out + 12, year / 100);
    put2(out + 14, year % 100);
    out[16] = ' ';
    put2(out + 17, tm.tm_hour);
    out[19] = ':';
    put2(out + 20, tm.tm_min);
    out[22] = ':';
    put2(out + 23, tm.tm_sec);
    memcpy(out + 25, " GMT", 4);
    out[TP_HTTP_DATE_LEN] = '\0';
    return TP_HTTP_DATE_LEN;
}

static int digits(const char *p, size_t n)
{
    int v = 0;
    for (size_t i = 0; i < n; i++) {
        if (p[i] < '0' || p[i] > '9')
            return -1;
        v = v * 10 + (p[i] - '0');
    }
    return v;
}

/* Days from 1970-01-01 to y-m-d in the proleptic Gregorian calendar (civil_from_days
   inverted), so parsing needs neither timegm nor the TZ environment. */
static long days_from_civil(int y, int m, int d)
{
    y -= m <= 2;
    long era = (y >= 0 ? y : y - 399) / 400;
    long yoe = y - era * 400;
    long doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    long doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

int tp_http_date_parse(struct tp_str s, time_t *t)
{
    const char *p = s.base;
    if (s.len != TP_HTTP_DATE_LEN || p[3] != ',' || p[4] != ' ' || p[7] != ' ' ||
        p[11] != ' ' || p[16] != ' ' || p[19] != ':' || p[22] != ':' ||
        memcmp(p + 25, " GMT", 4) != 0)
        return -1;
    int mon = -1;
    for (int i = 0; i < 12; i++)
        if (memcmp(p + 8, months[i], 3) == 0)
            mon = i;
    int day = digits(p + 5, 2), year = digits(p + 12, 4);
    int hh = digits(p + 17, 2), mm = digits(p + 20, 2), ss = digits(p + 23, 2);
    if (mon < 0 || day < 1 || day > 31 || year < 1970 || hh > 23 || mm > 59 || ss > 60 ||
        hh < 0 || mm < 0 || ss < 0)
        return -1;
    long days = days_from_civil(year, mon + 1, day);
    *t = (time_t)(days * 86400L + hh * 3600L + mm * 60L + ss);
    return 0;
}

bool tp_http_method_idempotent(struct tp_str m)
{
    return tp_str_eq(m, "GET") || tp_str_eq(m, "HEAD") || tp_str_eq(m, "OPTIONS");
}

const char *tp_http_reason(int status)
{
    switch (status) {
    case 100: return "Continue";
    case 101: return "Switching Protocols";
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 204: return "No Content";
    case 206: return "Partial Content";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 303: return "See Other";
    case 304: return "Not Modified";
    case 307: return "Temporary Redirect";
    case 308: return "Permanent Redirect";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Not Allowed";
    case 408: return "Request Time-out";
    case 409: return "Conflict";
    case 411: return "Length Required";
    case 412: return "Precondition Failed";
    case 413: return "Request Entity Too Large";
    case 414: return "Request-URI Too Large";
    case 415: return "Unsupported Media Type";
    case 416: return "Requested Range Not Satisfiable";
    case 421: return "Misdirected Request";
    case 422: return "Unprocessable Entity";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 502: return "Bad Gateway";
    case 503: return "Service Temporarily Unavailable";
    case 504: return "Gateway Time-out";
    case 505: return "HTTP Version Not Supported";
    default: return "";
    }
}

size_t tp_http_error_page(int status, char *buf, size_t cap)
{
    const char *reason = tp_http_reason(status);
    int n = snprintf(buf, cap,
                     "<html>\r\n<head><title>%d %s</title></head>\r\n<body>\r\n"
                     "<center><h1>%d %s</h1></center>\r\n</body>\r\n</html>\r\n",
                     status, reason, status, reason);
    return n < 0 || (size_t)n >= cap ? 0 : (size_t)n;
}

bool tp_http_hop_by_hop(struct tp_str n)
{
    /* By length first: called for every field of every request and response. */
    switch (n.len) {
    case 2: return memcmp(n.base, "te", 2) == 0;
    case 7:
        return memcmp(n.base, "upgrade", 7) == 0 || memcmp(n.base, "trailer", 7) == 0;
    case 10:
        return memcmp(n.base, "connection", 10) == 0 ||
               memcmp(n.base, "keep-alive", 10) == 0;
    case 14: return memcmp(n.base, "http2-settings", 14) == 0;
    case 16: return memcmp(n.base, "proxy-connection", 16) == 0;
    case 17: return memcmp(n.base, "transfer-encoding", 17) == 0;
    default: return false;
    }
}

const char *tp_strerror(int err)
{
    switch (err) {
    case TP_OK: return "success";
    case TP_ERR_INVALID: return "invalid input";
    case TP_ERR_TOO_LARGE: return "too large";
    case TP_ERR_TRUNCATED: return "truncated input";
    case TP_ERR_STATE: return "invalid state";
    case TP_ERR_CRYPTO: return "cryptographic failure";
    case TP_ERR_UNSUPPORTED: return "unsupported";
    case TP_ERR_IO: return "i/o error";
    case TP_ERR_TIMEOUT: return "timeout";
    case TP_ERR_CONNECT: return "connect failed";
    case TP_ERR_PROTO: return "protocol error";
    case TP_ERR_CLOSED: return "connection closed";
    case TP_ERR_CANCELLED: return "cancelled";
    case TP_ERR_NOMEM: return "out of memory";
    default: return "unknown error";
    }
}

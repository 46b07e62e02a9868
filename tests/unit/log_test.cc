#include "util/log.h"

#include <errno.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace usmc::util {
namespace {

std::vector<std::string> ReadLines(const std::string& path, std::string* raw) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  *raw = ss.str();
  std::vector<std::string> lines;
  std::string line;
  std::istringstream is(*raw);
  while (std::getline(is, line)) lines.push_back(line);
  return lines;
}

std::string Prefix(pid_t pid) { return "usmc[" + std::to_string(pid) + "]: "; }

class LogTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/usmc_log_test.XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    path_ = dir_ + "/log";
    unsetenv("USMC_LOG");
    unsetenv("USMC_DEBUG");
    LogResetForTesting();
  }
  void TearDown() override {
    unsetenv("USMC_LOG");
    unsetenv("USMC_DEBUG");
    LogResetForTesting();
    std::string cmd = "rm -rf '" + dir_ + "'";
    EXPECT_EQ(system(cmd.c_str()), 0);
  }
  void UseFile() {
    setenv("USMC_LOG", path_.c_str(), 1);
    LogResetForTesting();
  }
  std::vector<std::string> Lines() { return ReadLines(path_, &raw_); }

  std::string dir_, path_, raw_;
};

TEST_F(LogTest, DisabledByDefault) {
  EXPECT_FALSE(LogEnabled());
  EXPECT_EQ(LogFd(), -1);
  Log("nobody sees %d", 1);
  setenv("USMC_DEBUG", "0", 1);
  LogResetForTesting();
  EXPECT_FALSE(LogEnabled());
}

TEST_F(LogTest, FileGetsExactlyOneLinePerCall) {
  UseFile();
  LogInit();
  ASSERT_TRUE(LogEnabled());
  EXPECT_GE(LogFd(), 0);
  EXPECT_TRUE(fcntl(LogFd(), F_GETFD) & FD_CLOEXEC);
  EXPECT_TRUE(fcntl(LogFd(), F_GETFL) & O_APPEND);
  Log("first %d", 1);
  Log("second %s", "two");
  USMC_LOG("third");
  Log("already ends in a newline\n");
  Log("%s", "");
  std::vector<std::string> lines = Lines();
  std::string p = Prefix(getpid());
  ASSERT_EQ(lines.size(), 5u) << raw_;
  EXPECT_EQ(lines[0], p + "first 1");
  EXPECT_EQ(lines[1], p + "second two");
  EXPECT_EQ(lines[2], p + "third");
  EXPECT_EQ(lines[3], p + "already ends in a newline");
  EXPECT_EQ(lines[4], p);
  EXPECT_EQ(raw_.back(), '\n');
}

TEST_F(LogTest, AppendsToAnExistingFile) {
  std::ofstream(path_) << "earlier\n";
  UseFile();
  Log("later");
  std::vector<std::string> lines = Lines();
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_EQ(lines[0], "earlier");
  EXPECT_EQ(lines[1], Prefix(getpid()) + "later");
}

TEST_F(LogTest, PreservesErrnoAndFormatsPercentM) {
  UseFile();
  errno = ECONNREFUSED;
  Log("connect: %m");
  EXPECT_EQ(errno, ECONNREFUSED);
  errno = EAGAIN;
  USMC_LOG("x");
  EXPECT_EQ(errno, EAGAIN);
  errno = ENOENT;
  LogInit();
  EXPECT_EQ(errno, ENOENT);
  std::vector<std::string> lines = Lines();
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_EQ(lines[0], Prefix(getpid()) + "connect: Connection refused");
}

TEST_F(LogTest, LongMessageStaysOneTruncatedLine) {
  UseFile();
  std::string big(5000, 'x');
  Log("%s", big.c_str());
  Log("after");
  std::vector<std::string> lines = Lines();
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_LE(lines[0].size() + 1, 1024u);
  EXPECT_EQ(lines[0].substr(lines[0].size() - 3), "...");
  EXPECT_EQ(lines[0].rfind(Prefix(getpid()), 0), 0u);
  EXPECT_EQ(lines[1], Prefix(getpid()) + "after");
}

TEST_F(LogTest, ForkedChildLinesLand) {
  UseFile();
  Log("parent before");
  pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    Log("child %d", 1);
    Log("child %d", 2);
    _exit(0);
  }
  int status = 0;
  ASSERT_EQ(waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  Log("parent after");
  std::vector<std::string> lines = Lines();
  ASSERT_EQ(lines.size(), 4u) << raw_;
  EXPECT_EQ(lines[0], Prefix(getpid()) + "parent before");
  EXPECT_EQ(lines[1], Prefix(child) + "child 1");
  EXPECT_EQ(lines[2], Prefix(child) + "child 2");
  EXPECT_EQ(lines[3], Prefix(getpid()) + "parent after");
}

// Parses "usmc[PID]: n=I PAD end" where PAD repeats one letter; false if the
// line is not exactly that (e.g. pieces of two lines mixed).
bool ParseWorkerLine(const std::string& l, std::string* pid, int* n) {
  size_t close = l.find("]: n=");
  if (l.rfind("usmc[", 0) != 0 || close == std::string::npos) return false;
  *pid = l.substr(5, close - 5);
  size_t sp = l.find(' ', close + 5);
  if (sp == std::string::npos || l.size() < sp + 6) return false;
  *n = std::stoi(l.substr(close + 5, sp - close - 5));
  std::string pad = l.substr(sp + 1, l.size() - sp - 5);
  if (l.substr(l.size() - 4) != " end" || pad.size() < 100) return false;
  return pad.find_first_not_of(pad[0]) == std::string::npos;
}

// Several processes writing at once: every line arrives whole.
TEST_F(LogTest, ConcurrentWritersDoNotInterleave) {
  UseFile();
  constexpr int kProcs = 4, kLines = 2000;
  int go[2];
  ASSERT_EQ(pipe(go), 0);
  std::vector<pid_t> kids;
  for (int p = 0; p < kProcs; ++p) {
    pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      close(go[1]);
      char c;
      if (read(go[0], &c, 1) != 0) _exit(1);  // start together
      std::string pad(100 + p * 50, static_cast<char>('a' + p));
      for (int i = 0; i < kLines; ++i) Log("n=%d %s end", i, pad.c_str());
      _exit(0);
    }
    kids.push_back(pid);
  }
  close(go[0]);
  close(go[1]);
  for (pid_t k : kids) {
    int status = 0;
    ASSERT_EQ(waitpid(k, &status, 0), k);
    ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  }
  std::vector<std::string> lines = Lines();
  ASSERT_EQ(lines.size(), static_cast<size_t>(kProcs * kLines));
  std::map<std::string, int> next;  // per pid: lines arrive in order
  for (const std::string& l : lines) {
    std::string pid;
    int n = -1;
    ASSERT_TRUE(ParseWorkerLine(l, &pid, &n)) << l;
    EXPECT_EQ(n, next[pid]++);
  }
  EXPECT_EQ(next.size(), static_cast<size_t>(kProcs));
}

// Threads racing on the first call: the file is opened once, no line lost.
TEST_F(LogTest, ThreadsShareOneLazyInit) {
  UseFile();
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([t] {
      for (int i = 0; i < 100; ++i) Log("thread %d line %d", t, i);
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_GE(LogFd(), 0);
  int opened = 0;
  for (const auto& e : std::filesystem::directory_iterator("/proc/self/fd")) {
    std::error_code ec;
    if (std::filesystem::read_symlink(e.path(), ec) == path_) ++opened;
  }
  EXPECT_EQ(opened, 1);
  EXPECT_EQ(Lines().size(), 800u);
}

TEST_F(LogTest, DebugGoesToStderr) {
  int pipefd[2];
  ASSERT_EQ(pipe(pipefd), 0);
  pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    dup2(pipefd[1], STDERR_FILENO);
    setenv("USMC_DEBUG", "1", 1);
    LogResetForTesting();
    Log("to stderr %d", 7);
    _exit(LogEnabled() && LogFd() == -1 ? 0 : 1);
  }
  close(pipefd[1]);
  char buf[256] = {};
  ssize_t n = read(pipefd[0], buf, sizeof buf - 1);
  close(pipefd[0]);
  int status = 0;
  ASSERT_EQ(waitpid(child, &status, 0), child);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  ASSERT_GT(n, 0);
  EXPECT_EQ(std::string(buf, static_cast<size_t>(n)),
            Prefix(child) + "to stderr 7\n");
}

TEST_F(LogTest, FileWinsOverDebug) {
  setenv("USMC_DEBUG", "1", 1);
  UseFile();
  Log("in the file");
  std::vector<std::string> lines = Lines();
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_EQ(lines[0], Prefix(getpid()) + "in the file");
}

TEST_F(LogTest, UnopenableFileWarnsOnStderr) {
  int pipefd[2];
  ASSERT_EQ(pipe(pipefd), 0);
  pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    dup2(pipefd[1], STDERR_FILENO);
    setenv("USMC_LOG", (dir_ + "/no/such/dir/log").c_str(), 1);
    LogResetForTesting();
    _exit(LogEnabled() ? 1 : 0);
  }
  close(pipefd[1]);
  char buf[512] = {};
  ssize_t n = read(pipefd[0], buf, sizeof buf - 1);
  close(pipefd[0]);
  int status = 0;
  ASSERT_EQ(waitpid(child, &status, 0), child);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  ASSERT_GT(n, 0);
  EXPECT_NE(std::string(buf).find("cannot open USMC_LOG file"),
            std::string::npos)
      << buf;
  EXPECT_NE(std::string(buf).find("No such file or directory"),
            std::string::npos)
      << buf;
}

}  // namespace
}  // namespace usmc::util

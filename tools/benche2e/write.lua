-- write.lua: a wrk script that posts a short post for a random user, without a URL (link
-- previews are another benchmark). benche2e drives both write arms with it (embedded in the
-- binary); tools/bench/loadgen.sh drives wrk with it against loadgen. Users are 1 to the first
-- script argument (wrk ... -- 100), 100,000 when none is given.
local counter = 0
local users = 100000
function init(args)
  math.randomseed(os.time() * 1000 + (tid or 0))
  if args[1] then users = tonumber(args[1]) end
end
function request()
  counter = counter + 1
  local uid = math.random(1, users)
  return wrk.format("POST", "/api/v1/posts", {["Content-Type"] = "application/json"},
    string.format('{"user_id":%d,"contents":"bench post %d"}', uid, counter))
end
